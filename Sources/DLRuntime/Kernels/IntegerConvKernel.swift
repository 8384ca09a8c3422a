import Foundation
import DLGraph
import DLKernels
import DLTensor

/// ConvInteger on 2-D 8-bit inputs in integers: (x − x_zero_point) ⊛ (w − w_zero_point) summed
/// in int32, the padding holding the zero point (so it adds nothing). Groups of more than one
/// input channel go through im2col (the patch bytes, the zero point where a tap falls outside)
/// and `IntegerGemm` (VNNI or its scalar loop), one product per group and image: the group's
/// weight rows [M/G, K] times the patches [K, OH·OW] land as NCHW rows directly. Groups of one
/// input channel (depthwise) take a direct loop over the taps, each kernel column's run of
/// output columns bounded once instead of per element. Other ranks and types, and depths past
/// `IntegerGemm.maxDepth`, go to the general kernel.
enum IntegerConvKernel {
    static let fast: FastKernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), w = try ctx.input(1)
        let bytes: Set<DType> = [.int8, .uint8]
        guard x.rank == 4, w.rank == 4, bytes.contains(x.dtype), bytes.contains(w.dtype) else { return nil }
        let xz = ctx.optionalInput(2), wz = ctx.optionalInput(3)
        guard xz.map({ $0.elementCount == 1 && $0.dtype == x.dtype }) ?? true,
              wz.map({ ($0.elementCount == 1 || $0.elementCount == w.shape[0]) && $0.dtype == w.dtype }) ?? true else { return nil }
        let (group, g) = try ConvFamilyKernels.convSetup(ctx, x: x, w: w)
        let p = Shape(x: x.shape, w: w.shape, group: group, g)
        guard p.k <= IntegerGemm.maxDepth else { return nil }
        let xZero = Int32(xz?.int64s().first ?? 0)
        let wZero = wz?.int64s().map { Int32($0) } ?? []
        let out = ctx.makeOutput(.int32, shape: [p.n, p.m, p.oh, p.ow])
        guard out.elementCount > 0 else { return [out] }
        x.withUnsafeBytes { xb in
            w.withUnsafeBytes { wb in
                out.withUnsafeMutableBufferPointerInPlace(as: Int32.self) { y in
                    guard let y = y.baseAddress else { return }
                    if p.cg == 1 {
                        direct(p, x: xb, xSigned: x.dtype == .int8, xZero: xZero, w: wb, wSigned: w.dtype == .int8, wZero: wZero, into: y)
                    } else {
                        im2colGemm(p, x: xb, xSigned: x.dtype == .int8, xZero: xZero, w: wb, wSigned: w.dtype == .int8, wZero: wZero, into: y)
                    }
                }
            }
        }
        return [out]
    }

    /// `ai.dlkit.ConvIntegerNHWC(x, w, x_zero_point, w_zero_point, bias[, left, multiplier,
    /// right, real_scale, y_scale, y_zero_point])` (see `FuseConvIntegerNHWC`): channels-last
    /// 8-bit convolutions on `IntegerConvolution` (AVX-512 VNNI), requantized as
    /// `ai.dlkit.Requantize` band by band while the sums are in cache when the node carries
    /// Requantize's inputs; anything else, and every call without VNNI, as the ops it replaces
    /// (transpose to NCHW, ConvInteger, transpose back, add the bias, Requantize).
    static let nhwc: Kernel = { ctx throws(RuntimeError) in
        let requantized = ctx.node.inputs.count > 5
        let x = try ctx.input(0), w = try ctx.input(1)
        let xz = ctx.optionalInput(2), wz = ctx.optionalInput(3), bias = ctx.optionalInput(4)
        guard x.rank == 4, w.rank == 4 else { throw ctx.fail("needs a 4-D NHWC X and 4-D W, got \(x.shape) and \(w.shape)") }
        if let bias, bias.dtype != .int32 || bias.rank != 1 || (bias.elementCount != 1 && bias.elementCount != w.shape[0]) {
            throw ctx.fail("bias must be int32 [\(w.shape[0])] (one per output channel) or [1], got \(bias.dtype) \(bias.shape)")
        }
        let window = try ctx.window()
        let group = window.group
        guard group > 0, x.shape[3] == w.shape[1] * group, w.shape[0] % group == 0 else {
            throw ctx.fail("X \(x.shape) (NHWC) and W \(w.shape) do not fit group \(group)")
        }
        let g = try ctx.attribute { () throws(GraphError) in
            try window.geometry(input: [x.shape[1], x.shape[2]], kernel: window.kernel(weight: [w.shape[2], w.shape[3]]), isPooling: false)
        }
        let bytes: Set<DType> = [.int8, .uint8]
        if IntegerGemm.vnni, bytes.contains(x.dtype), bytes.contains(w.dtype),
           xz.map({ $0.elementCount == 1 && $0.dtype == x.dtype }) ?? true,
           wz.map({ ($0.elementCount == 1 || $0.elementCount == w.shape[0]) && $0.dtype == w.dtype }) ?? true {
            let p = IntegerConvolution.Geometry(n: x.shape[0], h: x.shape[1], w: x.shape[2], c: x.shape[3], m: w.shape[0],
                                                kh: w.shape[2], kw: w.shape[3], sh: g.strides[0], sw: g.strides[1],
                                                dh: g.dilations[0], dw: g.dilations[1], pt: g.padsBegin[0], pl: g.padsBegin[1],
                                                oh: g.output[0], ow: g.output[1], group: group)
            if let packed = packedWeights(w, zeroPoints: wz?.int64s().map { Int32($0) } ?? [], geometry: p) {
                let shape = [p.n, p.oh, p.ow, p.m]
                let xZero = Int32(xz?.int64s().first ?? 0)
                var b = bias?.scalars(as: Int32.self) ?? []
                if b.count == 1 { b = [Int32](repeating: b[0], count: p.m) }
                if requantized {
                    // The constants for one row of sums (the sums themselves live in scratch).
                    let (scales, outType) = try RequantizeKernel.outputScales(ctx, base: 4)
                    let out = ctx.makeOutput(outType, shape: shape)
                    guard out.elementCount > 0 else { return [out] }
                    let form = try RequantizeKernel.integerForm(ctx, width: p.m, base: 4, scales: scales)
                    let (fixed, l, mm, r) = (form.fixed, form.left, form.multiplier, form.right)
                    // The int32 sums in a kept scratch buffer (MobileNetV2's first expansion makes 4.8 MB
                    // of them: a fresh allocation faulted its pages in on every run).
                    let count = out.elementCount
                    let scratch = ConvolutionScratch.shared.take(count)
                    defer {
                        _ = UnsafeMutableRawPointer(scratch.pointer).bindMemory(to: Float.self, capacity: scratch.capacity)
                        ConvolutionScratch.shared.give(scratch)
                    }
                    let sBase = UnsafeMutableRawPointer(scratch.pointer).bindMemory(to: Int32.self, capacity: scratch.capacity)
                    let done = x.withUnsafeBytes { xb in
                        out.withUnsafeMutableBytesInPlace { o in
                            // The vector requantization runs wherever VNNI does (bands may run on
                            // the pool's threads, each for other pixels).
                            guard let oBase = o.baseAddress, CPUFeatures.avx512 else { return false }
                            return IntegerConvolution.run(p, x: xb, xSigned: x.dtype == .int8, xZero: xZero, weights: packed, bias: b,
                                                          into: sBase) { first, count in
                                if let fixed {
                                    _ = fixed.run(sBase + first * p.m, rows: count, signed: outType == .int8, into: oBase + first * p.m)
                                } else {
                                    _ = IntegerRequantize.run(sBase + first * p.m, .int32, rows: count, width: p.m, left: l, multiplier: mm,
                                                              right: r, scales, signed: outType == .int8, into: oBase + first * p.m)
                                }
                            }
                        }
                    }
                    if done { return [out] }
                } else {
                    let out = ctx.makeOutput(.int32, shape: shape)
                    guard out.elementCount > 0 else { return [out] }
                    let done = x.withUnsafeBytes { xb in
                        out.withUnsafeMutableBufferPointerInPlace(as: Int32.self) { y in
                            y.baseAddress.map { IntegerConvolution.run(p, x: xb, xSigned: x.dtype == .int8, xZero: xZero, weights: packed, bias: b, into: $0) } ?? false
                        }
                    }
                    if done { return [out] }
                }
            }
        }
        // The ops it stands for.
        let conv = Node(name: ctx.node.name, opType: "ConvInteger", inputs: ["x", "w", "x_zero_point", "w_zero_point"],
                        outputs: ctx.node.outputs, attributes: ctx.node.attributes)
        let xt: Tensor, y: Tensor
        do { xt = try x.transposed([0, 3, 1, 2]) } catch { throw ctx.fail("\(error)") }
        let inputs: [Tensor?] = [xt, w, xz, wz]
        var c = KernelContext(node: conv, inputs: inputs, outputTypes: [nil])
        c.values = inputs.map { $0.map { GraphValue.tensor($0) } }
        c.opset = ctx.opset
        guard let general = OpKernels.table["ConvInteger"]?.run else { throw ctx.unsupported("no kernel for ConvInteger") }
        var result = try fast(c)
        if result == nil { result = try general(c) }
        guard let sums = result?.first else { throw ctx.fail("ConvInteger gave no output") }
        do { y = try sums.transposed([0, 2, 3, 1]) } catch { throw ctx.fail("\(error)") }
        var biased = y
        if let bias { biased = try ctx.runOp("Add", [y, bias]) }
        guard requantized else { return [biased] }
        return try RequantizeKernel.requantize(ctx, try RequantizeKernel.FixedPoint(ctx, x: biased, base: 4), base: 4)
    }

    /// QLinearConv on 2-D 8-bit inputs with AVX-512 VNNI, channels last inside: x to NHWC (a
    /// byte transpose), the int32 sums plus the bias on `IntegerConvolution` (weights packed
    /// once), each band requantized while in cache as ONNX Runtime requantizes, saturate(round_half_even(Float(sum) · scale) +
    /// y_zero_point) with scale = (x_scale · w_scale) / y_scale in float32, and back to NCHW.
    /// Nil (the general kernel runs) for other types, ranks and machines.
    static func qlinear(_ ctx: KernelContext) throws(RuntimeError) -> Tensor? {
        let x = try ctx.input(0), w = try ctx.input(3)
        let bytes: Set<DType> = [.int8, .uint8]
        guard IntegerGemm.vnni, x.rank == 4, w.rank == 4, bytes.contains(x.dtype), bytes.contains(w.dtype),
              let xz = ctx.optionalInput(2), xz.dtype == x.dtype, xz.elementCount == 1,
              let yz = ctx.optionalInput(7), bytes.contains(yz.dtype), yz.elementCount == 1,
              let wz = ctx.optionalInput(5), wz.dtype == w.dtype else { return nil }
        let xScale = try ctx.input(1), wScale = try ctx.input(4), yScale = try ctx.input(6), m = w.shape[0]
        guard xScale.dtype == .float32, xScale.elementCount == 1, yScale.dtype == .float32, yScale.elementCount == 1,
              wScale.dtype == .float32, wScale.elementCount == 1 || wScale.elementCount == m,
              wz.elementCount == 1 || wz.elementCount == m,
              let xs = xScale.scalars(as: Float.self).first, let ys = yScale.scalars(as: Float.self).first else { return nil }
        let bias = ctx.optionalInput(8)
        if let bias, bias.dtype != .int32 || bias.elementCount != m { return nil }
        let (group, g) = try ConvFamilyKernels.convSetup(ctx, x: x, w: w)
        let p = IntegerConvolution.Geometry(n: x.shape[0], h: x.shape[2], w: x.shape[3], c: x.shape[1], m: m,
                                            kh: w.shape[2], kw: w.shape[3], sh: g.strides[0], sw: g.strides[1],
                                            dh: g.dilations[0], dw: g.dilations[1], pt: g.padsBegin[0], pl: g.padsBegin[1],
                                            oh: g.output[0], ow: g.output[1], group: group)
        guard let packed = packedWeights(w, zeroPoints: wz.int64s().map { Int32($0) }, geometry: p) else { return nil }
        let ws = wScale.scalars(as: Float.self)
        let scales = (0..<m).map { (xs * ws[ws.count == 1 ? 0 : $0]) / ys }
        let count = p.n * p.plane * m
        guard count > 0 else { return nil }
        // Channels last inside: x's bytes transposed per image, the sums requantized band by
        // band into channels-last bytes, transposed back into the NCHW output.
        var xt = [UInt8](repeating: 0, count: x.elementCount), sums = [Int32](repeating: 0, count: count)
        var bytesOut = [UInt8](repeating: 0, count: count)
        let xZero = Int32(xz.int64s()[0]), yZero = Int32(yz.int64s()[0])
        let out = ctx.makeOutput(yz.dtype, shape: [p.n, m, p.oh, p.ow])
        let done = x.withUnsafeBytes { xb in
            xt.withUnsafeMutableBytes { xt in
                sums.withUnsafeMutableBufferPointer { acc in
                    bytesOut.withUnsafeMutableBytes { nhwc in
                        out.withUnsafeMutableBytesInPlace { y in
                            guard let xp = xb.baseAddress, let xtp = xt.baseAddress, let a = acc.baseAddress,
                                  let q = nhwc.baseAddress, let yp = y.baseAddress, CPUFeatures.avx512 else { return false }
                            IntegerConvolution.transposeBytes(xp, count: p.n, rows: p.c, cols: p.h * p.w, into: xtp)
                            // Bands may run on the pool's threads, each for other pixels.
                            let ran = IntegerConvolution.run(p, x: UnsafeRawBufferPointer(xt), xSigned: x.dtype == .int8, xZero: xZero,
                                                             weights: packed, bias: bias?.scalars(as: Int32.self) ?? [], into: a) { first, rows in
                                _ = IntegerRequantize.scaled(a + first * m, rows: rows, width: m, scales: scales, zero: yZero,
                                                             signed: yz.dtype == .int8, into: q + first * m)
                            }
                            guard ran else { return false }
                            IntegerConvolution.transposeBytes(q, count: p.n, rows: p.plane, cols: m, into: yp)
                            return true
                        }
                    }
                }
            }
        }
        return done ? out : nil
    }

    /// What packed 8-bit weights depend on besides their bytes.
    struct PackKey: Equatable {
        let signed: Bool
        let zeroPoints: [Int32]
        let m, cg, kh, kw, group: Int
        let columns: Bool
    }

    /// Packed weights by the storage they were packed from: a plan's constant weights are packed
    /// on its first run, not on every run.
    static let packs = StorageCache<PackKey, IntegerConvolution.Packed>()

    /// `w` packed for `p` (`columns`: w is a [C, M] matrix), from the cache when the same
    /// weights were packed before.
    static func packedWeights(_ w: Tensor, zeroPoints: [Int32], geometry p: IntegerConvolution.Geometry,
                              columns: Bool = false) -> IntegerConvolution.Packed? {
        let key = PackKey(signed: w.dtype == .int8, zeroPoints: zeroPoints, m: p.m, cg: p.cg, kh: p.kh, kw: p.kw, group: p.group, columns: columns)
        return packs.value(for: [w.sharedStorage], key: key) {
            w.withUnsafeBytes { IntegerConvolution.Packed(weights: $0, signed: w.dtype == .int8, wZero: zeroPoints, geometry: p, columns: columns) }
        }
    }

    /// The sizes of one 2-D grouped convolution.
    struct Shape {
        var n, c, h, w, m, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, group: Int
        var cg: Int { c / group }
        var mg: Int { m / group }
        var k: Int { cg * kh * kw }
        var plane: Int { oh * ow }

        init(x: [Int], w wShape: [Int], group: Int, _ g: WindowGeometry) {
            (n, c, h, w) = (x[0], x[1], x[2], x[3])
            (m, kh, kw) = (wShape[0], g.kernel[0], g.kernel[1])
            (oh, ow) = (g.output[0], g.output[1])
            (sh, sw, dh, dw) = (g.strides[0], g.strides[1], g.dilations[0], g.dilations[1])
            (pt, pl) = (g.padsBegin[0], g.padsBegin[1])
            self.group = group
        }

        /// The output columns [lo, hi) whose tap at kernel column `kx` falls inside the input.
        func columns(_ kx: Int) -> Range<Int> {
            let offset = kx * dw - pl
            // ox·sw + offset ≥ 0 and ≤ w − 1.
            let lo = offset >= 0 ? 0 : (-offset + sw - 1) / sw
            let hi = w - 1 - offset < 0 ? 0 : min(ow, (w - 1 - offset) / sw + 1)
            return lo < hi ? lo..<hi : 0..<0
        }
    }

    static func zero(_ z: [Int32], _ i: Int) -> Int32 { z.isEmpty ? 0 : z.count == 1 ? z[0] : z[i] }

    static func im2colGemm(_ p: Shape, x: UnsafeRawBufferPointer, xSigned: Bool, xZero: Int32,
                           w: UnsafeRawBufferPointer, wSigned: Bool, wZero: [Int32], into y: UnsafeMutablePointer<Int32>) {
        let plane = p.plane, k = p.k
        // Taps outside the input hold the zero point; which ones are outside depends only on the
        // geometry, so the buffer is filled once and only inside taps are written.
        var col = [UInt8](repeating: UInt8(truncatingIfNeeded: xZero), count: k * plane)
        let columns = (0..<p.kw).map { p.columns($0) }
        col.withUnsafeMutableBufferPointer { colBuf in
            for b in 0..<p.n {
                for gi in 0..<p.group {
                    // Patches: row (c·KH + ky)·KW + kx, column oy·OW + ox.
                    for ci in 0..<p.cg {
                        let src = ((b * p.c) + gi * p.cg + ci) * p.h * p.w
                        for ky in 0..<p.kh {
                            for kx in 0..<p.kw {
                                let row = ((ci * p.kh + ky) * p.kw + kx) * plane
                                let cols = columns[kx]
                                for oy in 0..<p.oh {
                                    let iy = oy * p.sh - p.pt + ky * p.dh
                                    guard iy >= 0, iy < p.h else { continue }
                                    let at = row + oy * p.ow, line = src + iy * p.w + kx * p.dw - p.pl
                                    for ox in cols { colBuf[at + ox] = x[line + ox * p.sw] }
                                }
                            }
                        }
                    }
                    let weights = UnsafeRawBufferPointer(rebasing: w[(gi * p.mg * k)..<((gi + 1) * p.mg * k)])
                    let zeros = wZero.count > 1 ? Array(wZero[(gi * p.mg)..<((gi + 1) * p.mg)]) : wZero
                    IntegerGemm.multiply(IntegerGemm.Operand(bytes: weights, signed: wSigned, rows: p.mg, cols: k, zeroPoints: zeros),
                                         IntegerGemm.Operand(bytes: UnsafeRawBufferPointer(colBuf), signed: xSigned, rows: k, cols: plane,
                                                             zeroPoints: [xZero]),
                                         into: y + (b * p.m + gi * p.mg) * plane)
                }
            }
        }
    }

    /// One input channel per group: each output channel sums its channel's taps directly.
    static func direct(_ p: Shape, x: UnsafeRawBufferPointer, xSigned: Bool, xZero: Int32,
                       w: UnsafeRawBufferPointer, wSigned: Bool, wZero: [Int32], into y: UnsafeMutablePointer<Int32>) {
        let inPlane = p.h * p.w, plane = p.plane, taps = p.kh * p.kw
        var centred = [Int32](repeating: 0, count: inPlane)
        let columns = (0..<p.kw).map { p.columns($0) }
        centred.withUnsafeMutableBufferPointer { xc in
            for b in 0..<p.n {
                for ci in 0..<p.c {
                    let src = (b * p.c + ci) * inPlane
                    for i in 0..<inPlane {
                        xc[i] = (xSigned ? Int32(Int8(bitPattern: x[src + i])) : Int32(x[src + i])) - xZero
                    }
                    // Output channels ci·(M/G) ..< (ci+1)·(M/G) read channel ci.
                    for oc in (ci * p.mg)..<((ci + 1) * p.mg) {
                        let acc = y + (b * p.m + oc) * plane
                        acc.update(repeating: 0, count: plane)
                        let wzc = zero(wZero, oc)
                        for ky in 0..<p.kh {
                            for kx in 0..<p.kw {
                                let raw = w[oc * taps + ky * p.kw + kx]
                                let wv = (wSigned ? Int32(Int8(bitPattern: raw)) : Int32(raw)) - wzc
                                if wv == 0 { continue }
                                let cols = columns[kx]
                                for oy in 0..<p.oh {
                                    let iy = oy * p.sh - p.pt + ky * p.dh
                                    guard iy >= 0, iy < p.h else { continue }
                                    let line = iy * p.w + kx * p.dw - p.pl, row = acc + oy * p.ow
                                    for ox in cols { row[ox] &+= wv &* xc[line + ox * p.sw] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
