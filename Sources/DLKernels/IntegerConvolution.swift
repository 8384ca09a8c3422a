import CKernels

/// 2-D convolution of 8-bit NHWC images with 8-bit weights, exact int32 sums plus an int32
/// bias: y[n][oy][ox][oc] = bias[oc] + Σ (x − x_zero)·(w − w_zero[oc]) over the taps inside the
/// image (the padding holds the zero point, so it adds nothing). Channels last is the layout
/// .tflite files keep, so the image rows are already the rows of the product:
/// - groups of more than one input channel: per group, the patch rows (`dlk_im2col_nhwc_u8`, in
///   tiles that stay in cache; none at all for a 1×1 unit-stride conv, whose image is its own
///   patch matrix, int8 bytes flipped to unsigned as the product reads them) times the weights,
///   packed once (`Packed`), on the VNNI product with the
///   zero-point and bias terms added at the store (`dlk_gemm_u8s8_offset`);
/// - depthwise (one input and one output channel per group): sixteen channels per vector over
///   the taps (`dlk_dwconv_nhwc`).
/// Only on AVX-512 VNNI (`IntegerGemm.vnni`); callers keep their general path otherwise.
public enum IntegerConvolution {
    /// The sizes of one grouped 2-D convolution over NHWC images.
    public struct Geometry: Sendable, Equatable {
        public var n, h, w, c, m, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, group: Int
        public var cg: Int { c / group }
        public var mg: Int { m / group }
        public var depth: Int { cg * kh * kw }
        public var plane: Int { oh * ow }
        public var isDepthwise: Bool { group == c && group == m }

        public init(n: Int, h: Int, w: Int, c: Int, m: Int, kh: Int, kw: Int, sh: Int, sw: Int, dh: Int, dw: Int,
                    pt: Int, pl: Int, oh: Int, ow: Int, group: Int) {
            (self.n, self.h, self.w, self.c, self.m) = (n, h, w, c, m)
            (self.kh, self.kw, self.sh, self.sw, self.dh, self.dw) = (kh, kw, sh, sw, dh, dw)
            (self.pt, self.pl, self.oh, self.ow, self.group) = (pt, pl, oh, ow, group)
        }

        /// Whether the sizes fit the C kernels' `Int32` arguments and the exact depth.
        var fits: Bool {
            let int32 = Int(Int32.max)
            return group > 0 && c % group == 0 && m % group == 0 && depth <= IntegerGemm.maxDepth
                && [n, h, w, c, m, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow].allSatisfy { $0 >= 0 && $0 <= int32 }
                && h.multipliedReportingOverflow(by: w).overflow == false && plane.multipliedReportingOverflow(by: m).overflow == false
        }
    }

    /// The weights [M, C/group, KH, KW] of one convolution in the layout its kernel reads,
    /// with the terms that depend only on them (not on the image size, so one packing serves
    /// every input shape): for the product, each group's [KH·KW·C/group, M/group] matrix (rows in
    /// the patch order: tap, then channel) as signed bytes in VNNI panels and its column sums;
    /// for depthwise, the centred weights as int32 [KH·KW][C].
    public final class Packed: @unchecked Sendable {
        /// M, C/group, KH, KW and the group count the weights were packed for.
        public let m, cg, kh, kw, group: Int
        /// Whether the weights came as a [K, M] matrix (MatMulInteger's B) rather than OIHW.
        public let columns: Bool
        let wSigned: Bool
        let wZero: [Int32]
        /// Product: per group, the packed panels and the column sums (signed-byte domain).
        let panels: [[Int8]]
        let columnSums: [[Int32]]
        /// Depthwise: (w − w_zero) at tap·C + channel, and Σ over the taps per channel.
        let centred: [Int32]
        let tapSums: [Int32]

        /// Packs `weights` (M·(C/group)·KH·KW bytes, OIHW; with `columns`, a 1×1 convolution's
        /// weights as a [C, M] matrix) with zero points `wZero` (none, one, or one per output
        /// channel) for a convolution of geometry `p` (its image size aside); nil when the geometry
        /// does not fit the kernels or the byte count does not match.
        public init?(weights: UnsafeRawBufferPointer, signed: Bool, wZero: [Int32], geometry p: Geometry, columns: Bool = false) {
            guard p.fits, weights.count == p.m * p.depth, wZero.count <= 1 || wZero.count == p.m,
                  !columns || (p.kh == 1 && p.kw == 1 && p.group == 1) else { return nil }
            (m, cg, kh, kw, group, self.columns) = (p.m, p.cg, p.kh, p.kw, p.group, columns)
            (wSigned, self.wZero) = (signed, wZero)
            func zero(_ oc: Int) -> Int32 { wZero.isEmpty ? 0 : wZero.count == 1 ? wZero[0] : wZero[oc] }
            func value(_ i: Int) -> Int32 { signed ? Int32(Int8(bitPattern: weights[i])) : Int32(weights[i]) }
            let taps = p.kh * p.kw
            if p.isDepthwise {
                var centred = [Int32](repeating: 0, count: taps * p.c), sums = [Int32](repeating: 0, count: p.c)
                for ch in 0..<p.c {
                    for t in 0..<taps {
                        let v = value(ch * taps + t) &- zero(ch)
                        centred[t * p.c + ch] = v
                        sums[ch] &+= v
                    }
                }
                (self.centred, tapSums, panels, columnSums) = (centred, sums, [], [])
                return
            }
            let k = p.depth, k4 = (k + 3) / 4, panel = Int(DLK_I8_PANEL), mg = p.mg
            let count = (mg + panel - 1) / panel * k4 * 64
            let flip: UInt8 = signed ? 0 : 0x80
            var panels: [[Int8]] = [], columnSums: [[Int32]] = []
            for g in 0..<p.group {
                var packed = [Int8](repeating: 0, count: count), sums = [Int32](repeating: 0, count: mg)
                for j in 0..<mg {
                    let oc = g * mg + j
                    for ky in 0..<p.kh {
                        for kx in 0..<p.kw {
                            for ci in 0..<p.cg {
                                // Row (tap, channel) of the product, from w[oc][ci][ky][kx].
                                let r = (ky * p.kw + kx) * p.cg + ci
                                let at = columns ? ci * p.m + oc : ((oc * p.cg + ci) * p.kh + ky) * p.kw + kx
                                let v = Int8(bitPattern: weights[at] ^ flip)
                                packed[(j / panel) * k4 * 64 + (r / 4) * 64 + (j % panel) * 4 + r % 4] = v
                                sums[j] &+= Int32(v)
                            }
                        }
                    }
                }
                panels.append(packed)
                columnSums.append(sums)
            }
            (self.panels, self.columnSums, centred, tapSums) = (panels, columnSums, [], [])
        }
    }

    /// Runs one convolution of geometry `p`: x is N·H·W·C bytes (int8 when `xSigned`), `bias` M
    /// values or empty, y N·OH·OW·M int32. `done(first, count)`, when given, is called as output
    /// pixels first ..< first + count (counted over the batch) are complete, while their sums are
    /// still in cache: a consumer (requantization) reads them there. Bands of rows run on the
    /// worker pool (`ParallelFor`), so `done` may be called from several threads at once, each
    /// time for other pixels. The sums do not depend on the split. False
    /// (nothing written) when the kernels cannot run here (no VNNI, or AVX-512 off for this
    /// thread) or the weights were packed for another shape.
    public static func run(_ p: Geometry, x: UnsafeRawBufferPointer, xSigned: Bool, xZero: Int32, weights: Packed, bias: [Int32],
                           into y: UnsafeMutablePointer<Int32>, done: ((Int, Int) -> Void)? = nil) -> Bool {
        let done = done.map { body in UncheckedSendable(body) }
        guard IntegerGemm.vnni, p.fits, weights.m == p.m, weights.cg == p.cg, weights.kh == p.kh, weights.kw == p.kw,
              weights.group == p.group, let xBase = x.baseAddress?.assumingMemoryBound(to: UInt8.self),
              x.count == p.n * p.h * p.w * p.c, bias.isEmpty || bias.count == p.m else { return false }
        let bias = bias.isEmpty ? [Int32](repeating: 0, count: p.m) : bias
        let image = p.h * p.w * p.c, outImage = p.plane * p.m
        if p.isDepthwise {
            let interior = (0..<p.c).map { bias[$0] &- xZero &* weights.tapSums[$0] }
            // Bands of output rows (all of them at once without a consumer, else a band's sums
            // about 32K), at least two a worker when several run: a band from row r is the
            // kernel's row 0 with the top padding moved up by r strides. (MobileNetV3's 7 × 7
            // layers of 512 channels made one band and ran on one thread; its 14 × 14 ones two
            // bands of 9 and 5 rows.)
            let band = Swift.min(done == nil ? p.oh : Swift.max(1, (1 << 15) / Swift.max(1, p.ow * p.c)), twoPartsAWorker(p.oh))
            let bands = (p.oh + band - 1) / band, taps = p.kh * p.kw
            weights.centred.withUnsafeBufferPointer { wc in
                for b in 0..<p.n {
                    ParallelFor.run(bands, cost: band * p.ow * p.c * taps) { lo, hi in
                        for k in lo..<hi {
                            let row = k * band, rows = Swift.min(band, p.oh - row)
                            dlk_dwconv_nhwc(xBase + b * image, xSigned ? 1 : 0, xZero, Int32(p.h), Int32(p.w), Int32(p.c), wc.baseAddress,
                                            bias, interior, Int32(p.kh), Int32(p.kw), Int32(p.sh), Int32(p.sw), Int32(p.dh), Int32(p.dw),
                                            Int32(p.pt - row * p.sh), Int32(p.pl), Int32(rows), Int32(p.ow), y + b * outImage + row * p.ow * p.c)
                            done?.value(b * p.plane + row * p.ow, rows * p.ow)
                        }
                    }
                }
            }
            return true
        }
        // The product in the moved domains: a′ = x xor 0x80 for int8 x (so unsigned), b′ as packed.
        let k = p.depth, k4 = (k + 3) / 4, lda = k4 * 4, mg = p.mg
        let aFlip: UInt8 = xSigned ? 0x80 : 0
        let za = xZero &+ (xSigned ? 128 : 0)
        let wShift: Int32 = weights.wSigned ? 0 : -128
        let zb = (0..<p.m).map { oc in (weights.wZero.isEmpty ? 0 : weights.wZero.count == 1 ? weights.wZero[0] : weights.wZero[oc]) &+ wShift }
        let rowTerm = zb.contains { $0 != 0 }
        // Σ(a′ − za)(b′ − zb) = Σ a′b′ + (bias − za·Σb′ + k·za·zb) − zb·Σa′.
        let columnAdd: [[Int32]] = (0..<p.group).map { g in
            (0..<mg).map { j in
                let oc = g * mg + j
                return bias[oc] &- za &* weights.columnSums[g][j] &+ Int32(truncatingIfNeeded: k) &* za &* zb[oc]
            }
        }
        let direct = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 && p.oh == p.h && p.ow == p.w
            && p.group == 1 && p.c % 4 == 0 && !rowTerm
        // Tiles of rows whose patch rows and int32 sums fit in about 128 KB together, so a consumer
        // reads the sums from cache (sized by the patches alone, MobileNetV2's first expansion
        // wrote 1.5 MB of sums per tile and its requantization read them back from memory).
        // On several workers, at least two tiles a worker (MobileNetV3's 1 × 1 convolutions on
        // 7 × 7, 49 rows, were one tile on one thread).
        let rowBytes = (direct ? 0 : lda) + 4 * p.m
        let tile = Swift.min(p.plane, Swift.max(4, (1 << 17) / rowBytes) & ~3, twoPartsAWorker(p.plane, multiple: 4))
        let tiles = (p.plane + tile - 1) / tile
        let pad = UInt8(truncatingIfNeeded: xZero) ^ aFlip
        for b in 0..<p.n {
            let src = xBase + b * image, dst = y + b * outImage
            for g in 0..<p.group {
                weights.panels[g].withUnsafeBufferPointer { panels in
                    columnAdd[g].withUnsafeBufferPointer { add in
                        zb.withUnsafeBufferPointer { zb in
                            let zeros = rowTerm ? zb.baseAddress.map { $0 + g * mg } : nil
                            // Tiles of rows on the pool, each chunk with its own patch rows.
                            ParallelFor.run(tiles, cost: tile * (lda + mg * k4)) { lo, hi in
                                var patches = [UInt8](repeating: 0, count: direct ? 0 : tile * lda)
                                var rowSums = [Int32](repeating: 0, count: rowTerm ? tile : 0)
                                patches.withUnsafeMutableBufferPointer { patches in
                                    rowSums.withUnsafeMutableBufferPointer { rowSums in
                                        for t in lo..<hi {
                                            let first = t * tile, rows = Swift.min(tile, p.plane - first)
                                            if direct {
                                                dlk_gemm_u8s8_offset(src + first * p.c, p.c, panels.baseAddress, Int32(rows), Int32(mg), Int32(k4),
                                                                     dst + first * p.m, p.m, add.baseAddress, nil, nil, aFlip)
                                            } else {
                                                dlk_im2col_nhwc_u8(src, Int32(p.h), Int32(p.w), Int32(p.c), Int32(g * p.cg), Int32(p.cg), aFlip, pad,
                                                                   Int32(p.kh), Int32(p.kw), Int32(p.sh), Int32(p.sw), Int32(p.dh), Int32(p.dw),
                                                                   Int32(p.pt), Int32(p.pl), Int32(p.ow), first, rows, patches.baseAddress, lda,
                                                                   rowTerm ? rowSums.baseAddress : nil)
                                                dlk_gemm_u8s8_offset(patches.baseAddress, lda, panels.baseAddress, Int32(rows), Int32(mg), Int32(k4),
                                                                     dst + first * p.m + g * mg, p.m, add.baseAddress, zeros,
                                                                     rowTerm ? UnsafePointer(rowSums.baseAddress) : nil, 0)
                                            }
                                            // One group's columns are the whole row.
                                            if p.group == 1 { done?.value(b * p.plane + first, rows) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if p.group > 1 { done?.value(b * p.plane, p.plane) }
        }
        return true
    }

    /// The most of `count` rows a part may take so that each of several workers gets at least two
    /// parts (rounded up to a `multiple`); `count` on one worker.
    static func twoPartsAWorker(_ count: Int, multiple: Int = 1) -> Int {
        let workers = ParallelFor.workerCount
        guard workers > 1 else { return count }
        let rows = (count + 2 * workers - 1) / (2 * workers)
        return Swift.max(multiple, (rows + multiple - 1) / multiple * multiple)
    }

    /// Each of `count` byte matrices of rows × cols (one after the other) transposed into `dst`
    /// (channels first to channels last and back, per image).
    public static func transposeBytes(_ src: UnsafeRawPointer, count: Int, rows: Int, cols: Int, into dst: UnsafeMutableRawPointer) {
        let s = src.assumingMemoryBound(to: UInt8.self), d = dst.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count { dlk_transpose_u8(s + i * rows * cols, rows, cols, d + i * rows * cols) }
    }
}

/// A closure handed to the pool's chunks, which call it for disjoint pixels.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
