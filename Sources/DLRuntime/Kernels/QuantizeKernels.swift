import DLGraph
import DLKernels
import DLTensor

/// Linear quantisation: QuantizeLinear and DequantizeLinear (per tensor, per axis, blocked),
/// DynamicQuantizeLinear, MatMulInteger, QLinearMatMul and QLinearConv, for the integer element
/// types DType has (the float8, 4-bit and 2-bit types do not exist in DType yet); the fused
/// `ai.dlkit.Requantize` and `FixedPointMultiply` (`RequantizeKernel`), ConvInteger's
/// integer fast variant and the channels-last `ai.dlkit.ConvIntegerNHWC` (`IntegerConvKernel`).
enum QuantizeKernels {
    static var all: [KernelEntry] {
        [.init("QuantizeLinear", quantize), .init("DequantizeLinear", dequantize), .init("DynamicQuantizeLinear", dynamicQuantize),
         .init("MatMulInteger", matmulInteger), .init("QLinearMatMul", qlinearMatMul), .init("QLinearConv", qlinearConv),
         .init("\(FusedOps.domain):Requantize", RequantizeKernel.kernel),
         .init("\(FusedOps.domain):FixedPointMultiply", RequantizeKernel.fixedPointMultiply),
         .init("\(FusedOps.domain):CentredSum", RequantizeKernel.centredSum),
         .init("\(FusedOps.domain):FixedPointAdd", RequantizeKernel.fixedPointAdd),
         .init("\(FusedOps.domain):ConvIntegerNHWC", IntegerConvKernel.nhwc)]
    }

    /// The integer fast variants, each with what it takes.
    static var fast: [FastEntry] {
        [.init("ConvInteger", "2-D int8/uint8 X and W; X's zero point one value, W's one or one per output channel", IntegerConvKernel.fast)]
    }

    /// The integer range of a quantised type.
    static func range(_ ctx: KernelContext, _ t: DType) throws(RuntimeError) -> (Double, Double) {
        switch t {
        case .uint8: return (0, 255)
        case .int8: return (-128, 127)
        case .uint16: return (0, 65535)
        case .int16: return (-32768, 32767)
        case .int32: return (-2147483648, 2147483647)
        case .uint4: return (0, 15)
        case .int4: return (-8, 7)
        case .uint2: return (0, 3)
        case .int2: return (-2, 1)
        default: throw ctx.fail("\(t) is not a quantised type (uint8, int8, uint16, int16, int32, 4- and 2-bit integers, float8)")
        }
    }

    /// For each element of `shape`, the index of its scale/zero point: per tensor (one value),
    /// per `axis` (a 1-D tensor as long as that dim) or blocked (the same rank as x, with the
    /// axis dim ceil(size / blockSize)).
    static func parameterIndex(_ ctx: KernelContext, shape: [Int], parameter p: Tensor, axis: Int, blockSize: Int,
                               label: String) throws(RuntimeError) -> [Int] {
        let n = shape.reduce(1, *)
        if p.elementCount == 1 && blockSize == 0 { return [Int](repeating: 0, count: n) }
        let a = try ctx.axis(axis, rank: shape.count)
        if blockSize <= 0 {
            guard p.rank == 1, p.shape[0] == shape[a] else {
                throw ctx.fail("\(label) of shape \(p.shape) is neither one value nor one per element of axis \(a) (size \(shape[a]))")
            }
            let (_, size, inner) = IndexMath.around(shape, axis: a)
            return (0..<n).map { ($0 / inner) % size }
        }
        var expected = shape
        expected[a] = (shape[a] + blockSize - 1) / blockSize
        guard p.shape == expected else {
            throw ctx.fail("\(label) of shape \(p.shape) does not match blocks of \(blockSize) along axis \(a) of \(shape) (expected \(expected))")
        }
        let pStrides = IndexMath.strides(expected), xStrides = IndexMath.strides(shape)
        return (0..<n).map { i in
            var rest = i, off = 0
            for d in 0..<shape.count {
                var idx = rest / xStrides[d]
                rest %= xStrides[d]
                if d == a { idx /= blockSize }
                off += idx * pStrides[d]
            }
            return off
        }
    }

    static let quantize: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), scale = try ctx.input(1), zp = ctx.optionalInput(2)
        guard x.dtype.isFloatingPoint, scale.dtype.isFloatingPoint else { throw ctx.fail("x and y_scale must be floating-point, got \(x.dtype) and \(scale.dtype)") }
        let outCode = try ctx.int("output_dtype", 0)
        var outType = DType.uint8
        if let zp { outType = zp.dtype } else if outCode != 0 {
            guard let t = DType(onnxCode: Int32(clamping: outCode)) else { throw ctx.unsupported("output_dtype \(outCode) is not supported") }
            outType = t
        }
        if let zp, outCode != 0, Int32(outCode) != zp.dtype.onnxCode {
            throw ctx.fail("output_dtype \(outCode) differs from the zero point's type \(zp.dtype)")
        }
        if let y = try quantizeBytes(ctx, x, scale, zp, outType) { return [y] }
        let axis = try ctx.int("axis", 1), block = try ctx.int("block_size", 0)
        if outType.isLowPrecisionFloat {
            // Float8/float4 targets: x / scale (+ zero point) rounded to the format, saturating
            // unless `saturate` is 0.
            let saturate = try ctx.int("saturate", 1) != 0
            let si = try parameterIndex(ctx, shape: x.shape, parameter: scale, axis: axis, blockSize: block, label: "y_scale")
            let zi = try zp.map { (z) throws(RuntimeError) in try parameterIndex(ctx, shape: x.shape, parameter: z, axis: axis, blockSize: block, label: "y_zero_point") }
            let xv = x.doubles(), sv = scale.doubles(), zv = zp?.doubles()
            let single = x.dtype == .float32 && scale.dtype == .float32
            var out = Tensor(zeros: outType, shape: x.shape)
            out.withUnsafeMutableBytes { b in
                for i in 0..<xv.count {
                    let q = single ? Double(Float(xv[i]) / Float(sv[si[i]])) : xv[i] / sv[si[i]]
                    let z = zv.map { $0[zi![i]] } ?? 0
                    b[i] = LowPrecision.encode(q + z, outType, saturate: saturate)
                }
            }
            return [out]
        }
        let (lo, hi) = try range(ctx, outType)
        let si = try parameterIndex(ctx, shape: x.shape, parameter: scale, axis: axis, blockSize: block, label: "y_scale")
        let zi = try zp.map { (z) throws(RuntimeError) in try parameterIndex(ctx, shape: x.shape, parameter: z, axis: axis, blockSize: block, label: "y_zero_point") }
        let xv = x.doubles(), sv = scale.doubles(), zv = zp?.doubles()
        // The quotient is taken in x's type (float32 division rounds differently from Double at
        // exact halves).
        let single = x.dtype == .float32 && scale.dtype == .float32
        let y = (0..<xv.count).map { i -> Double in
            let q = single ? Double(Float(xv[i]) / Float(sv[si[i]])) : xv[i] / sv[si[i]]
            let v = q.rounded(.toNearestOrEven) + (zv.map { $0[zi![i]] } ?? 0)
            return v.isNaN ? 0 : min(max(v, lo), hi)
        }
        return [Tensor.fromDoubles(y, dtype: outType, shape: x.shape)]
    }

    /// QuantizeLinear of float32 to 8 bits with one scale and zero point on AVX-512 (the general
    /// kernel's arithmetic: the float32 quotient rounded half to even, saturated, NaN to 0); nil
    /// for anything else.
    static func quantizeBytes(_ ctx: KernelContext, _ x: Tensor, _ scale: Tensor, _ zp: Tensor?, _ outType: DType) throws(RuntimeError) -> Tensor? {
        guard x.dtype == .float32, scale.dtype == .float32, scale.elementCount == 1, outType == .int8 || outType == .uint8,
              zp.map({ $0.elementCount == 1 }) ?? true, let s = scale.scalars(as: Float.self).first else { return nil }
        let zero = Int32(zp?.int64s().first ?? 0)
        let out = ctx.makeOutput(outType, shape: x.shape)
        guard out.elementCount > 0 else { return out }
        let (lo, hi): (Float, Float) = outType == .int8 ? (-128, 127) : (0, 255)
        x.withUnsafeBufferPointer(as: Float.self) { src in
            out.withUnsafeMutableBytesInPlace { dst in
                guard let sp = src.baseAddress, let dp = dst.baseAddress,
                      !IntegerRequantize.quantize(sp, count: x.elementCount, scale: s, zero: zero, signed: outType == .int8, into: dp) else { return }
                // Without AVX-512: the same arithmetic a value at a time.
                for i in 0..<x.elementCount {
                    let q = (sp[i] / s).rounded(.toNearestOrEven) + Float(zero)
                    let v = q.isNaN ? 0 : Swift.min(Swift.max(q, lo), hi)
                    dp.storeBytes(of: UInt8(truncatingIfNeeded: Int32(v)), toByteOffset: i, as: UInt8.self)
                }
            }
        }
        return out
    }

    /// DequantizeLinear of 8-bit values to float32 with one scale and zero point on AVX-512;
    /// nil for anything else.
    static func dequantizeBytes(_ ctx: KernelContext, _ x: Tensor, _ scale: Tensor, _ zp: Tensor?, _ outType: DType) -> Tensor? {
        guard x.dtype == .int8 || x.dtype == .uint8, scale.dtype == .float32, scale.elementCount == 1, outType == .float32,
              zp.map({ $0.elementCount == 1 }) ?? true, let s = scale.scalars(as: Float.self).first else { return nil }
        let zero = Int32(zp?.int64s().first ?? 0)
        let out = ctx.makeOutput(.float32, shape: x.shape)
        guard out.elementCount > 0 else { return out }
        x.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                guard let sp = src.baseAddress, let dp = dst.baseAddress,
                      !IntegerRequantize.dequantize(sp, count: x.elementCount, signed: x.dtype == .int8, zero: zero, scale: s, into: dp) else { return }
                // Without AVX-512: a value at a time.
                for i in 0..<x.elementCount {
                    let v = x.dtype == .int8 ? Int32(sp.load(fromByteOffset: i, as: Int8.self)) : Int32(sp.load(fromByteOffset: i, as: UInt8.self))
                    dp[i] = Float(v - zero) * s
                }
            }
        }
        return out
    }

    /// QLinearConv of 8-bit 2-D inputs where the integer path cannot run (no AVX-512 VNNI), as
    /// the QDQ graph it usually comes from computes it: DequantizeLinear of x and w (per output
    /// channel), the float32 Conv with the bias scaled by x_scale · w_scale, QuantizeLinear. On
    /// the float kernels, within a quantum of the integer result; nil for other inputs.
    static func qlinearConvInFloat(_ ctx: KernelContext) throws(RuntimeError) -> Tensor? {
        let x = try ctx.input(0), w = try ctx.input(3)
        let xScale = try ctx.input(1), wScale = try ctx.input(4), yScale = try ctx.input(6), m = w.shape.first ?? 0
        let bytes: Set<DType> = [.int8, .uint8]
        guard x.rank == 4, w.rank == 4, bytes.contains(x.dtype), bytes.contains(w.dtype), m > 0,
              xScale.dtype == .float32, xScale.elementCount == 1, yScale.dtype == .float32, yScale.elementCount == 1,
              wScale.dtype == .float32, wScale.elementCount == 1 || wScale.elementCount == m,
              let xz = ctx.optionalInput(2), let wz = ctx.optionalInput(5), let yz = ctx.optionalInput(7),
              wz.elementCount == wScale.elementCount, let xs = xScale.scalars(as: Float.self).first else { return nil }
        let axis = [Attribute(name: "axis", value: .int(0))]
        let xf = try ctx.runOp("DequantizeLinear", [x, xScale, xz])
        let wf = try ctx.runOp("DequantizeLinear", [w, wScale, wz], wScale.elementCount == 1 ? [] : axis)
        var inputs = [xf, wf]
        if let b = ctx.optionalInput(8) {
            guard b.dtype == .int32, b.elementCount == m else { return nil }
            let ws = wScale.scalars(as: Float.self)
            let bv = b.scalars(as: Int32.self)
            inputs.append(Tensor(shape: [m], scalars: (0..<m).map { Float(bv[$0]) * (xs * ws[ws.count == 1 ? 0 : $0]) }))
        }
        // The float Conv kernel takes its output shape from the node's type: given here.
        let (_, g) = try ConvFamilyKernels.convSetup(ctx, x: x, w: w)
        let shape = [x.shape[0], m] + g.output
        let node = Node(name: ctx.node.name, opType: "Conv", inputs: inputs.indices.map { "x\($0)" }, outputs: ctx.node.outputs,
                        attributes: ctx.node.attributes)
        var c = KernelContext(node: node, inputs: inputs, outputTypes: [TensorType(dtype: .float32, shape: shape)])
        c.values = inputs.map { .tensor($0) }
        c.opset = ctx.opset
        guard let kernel = OpKernels.table["Conv"]?.run, let conv = try kernel(c).first else { throw ctx.fail("Conv gave no output") }
        return try ctx.runOp("QuantizeLinear", [conv, yScale, yz])
    }

    static let dequantize: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), scale = try ctx.input(1), zp = ctx.optionalInput(2)
        guard x.dtype.isInteger || x.dtype.isLowPrecisionFloat else { throw ctx.fail("x must be a quantised integer or float8 tensor, got \(x.dtype)") }
        guard scale.dtype.isFloatingPoint else { throw ctx.fail("x_scale must be floating-point, got \(scale.dtype)") }
        if let zp, zp.dtype != x.dtype { throw ctx.fail("x_zero_point is \(zp.dtype), x is \(x.dtype)") }
        let outCode = try ctx.int("output_dtype", 0)
        var outType = scale.dtype
        if outCode != 0 {
            guard let t = DType(onnxCode: Int32(clamping: outCode)), t.isFloatingPoint else { throw ctx.fail("output_dtype \(outCode) is not a float type") }
            outType = t
        }
        if let y = dequantizeBytes(ctx, x, scale, zp, outType) { return [y] }
        let axis = try ctx.int("axis", 1), block = try ctx.int("block_size", 0)
        let si = try parameterIndex(ctx, shape: x.shape, parameter: scale, axis: axis, blockSize: block, label: "x_scale")
        let zi = try zp.map { (z) throws(RuntimeError) in try parameterIndex(ctx, shape: x.shape, parameter: z, axis: axis, blockSize: block, label: "x_zero_point") }
        let sv = scale.doubles()
        let y: [Double]
        if x.dtype.isLowPrecisionFloat {
            let xv = x.doubles(), zv = zp?.doubles()
            y = (0..<xv.count).map { i in (xv[i] - (zv.map { $0[zi![i]] } ?? 0)) * sv[si[i]] }
        } else {
            let xv = x.int64s(), zv = zp?.int64s()
            y = (0..<xv.count).map { i in Double(xv[i] - (zv.map { $0[zi![i]] } ?? 0)) * sv[si[i]] }
        }
        return [Tensor.fromDoubles(y, dtype: outType, shape: x.shape)]
    }

    /// uint8 quantisation with a scale and zero point that map [min(x, 0), max(x, 0)] onto
    /// [0, 255], computed in float32 as the spec does.
    static let dynamicQuantize: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype == .float32 else { throw ctx.fail("x must be float32, got \(x.dtype)") }
        let v = x.doubles().map { Float($0) }
        let lo = min(0, v.min() ?? 0), hi = max(0, v.max() ?? 0)
        var scale = (hi - lo) / 255
        if scale == 0 { scale = 1 }
        let zp = min(max((0 - lo / scale).rounded(.toNearestOrEven), 0), 255)
        let y = v.map { Double(min(max(($0 / scale).rounded(.toNearestOrEven) + zp, 0), 255)) }
        return [Tensor.fromDoubles(y, dtype: .uint8, shape: x.shape), Tensor(scalar: scale),
                Tensor.fromDoubles([Double(zp)], dtype: .uint8, shape: [])]
    }

    /// Integer values minus a zero point that is one value, or one per row (`perRow`, the
    /// second-to-last dim) or per column (the last dim).
    static func centred(_ ctx: KernelContext, _ t: Tensor, zeroPoint: Tensor?, perRow: Bool, label: String) throws(RuntimeError) -> [Int64] {
        var v = t.int64s()
        guard let zeroPoint else { return v }
        let z = zeroPoint.int64s()
        if z.count == 1 { return v.map { $0 - z[0] } }
        guard t.rank >= 1 else { throw ctx.fail("\(label) zero point needs a tensor of rank 1 or more") }
        let cols = t.shape[t.rank - 1], rows = t.rank >= 2 ? t.shape[t.rank - 2] : 1
        guard z.count == (perRow ? rows : cols) else {
            throw ctx.fail("\(label) zero point has \(z.count) values; expected 1 or \(perRow ? rows : cols)")
        }
        for i in 0..<v.count { v[i] -= z[perRow ? (i / cols) % rows : i % cols] }
        return v
    }

    /// numpy matmul of two integer operands (1-D promoted, batch dims broadcast) in wrapping Int64.
    static func integerMatMul(_ ctx: KernelContext, _ a: [Int64], _ aShape: [Int], _ b: [Int64], _ bShape: [Int]) throws(RuntimeError) -> ([Int64], [Int]) {
        try LinearAlgebraKernels.batchedMatMul(ctx, a, aShape, b, bShape, zero: Int64(0)) { $0 &+ $1 &* $2 }
    }

    static let matmulInteger: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1)
        guard a.dtype.isInteger, b.dtype.isInteger else { throw ctx.fail("A and B must be integer tensors, got \(a.dtype) and \(b.dtype)") }
        if let y = try IntegerMatMulKernel.product(ctx, a, b) { return [y] }
        let av = try centred(ctx, a, zeroPoint: ctx.optionalInput(2), perRow: true, label: "a")
        let bv = try centred(ctx, b, zeroPoint: ctx.optionalInput(3), perRow: false, label: "b")
        let (y, shape) = try integerMatMul(ctx, av, a.shape, bv, b.shape)
        return [Tensor.fromInt64s(y, dtype: .int32, shape: shape)]
    }

    /// A scalar rounded to `dtype` (scale arithmetic follows the scales' own precision).
    static func rounded(_ v: Double, _ dtype: DType) -> Double {
        dtype == .float64 ? v : Tensor.fromDoubles([v], dtype: dtype, shape: [1]).doubles()[0]
    }

    /// Requantises `acc` (integer accumulators) by `factor` per element, adds the zero point and
    /// saturates to `outType`.
    static func requantize(_ ctx: KernelContext, _ acc: [Int64], factor: (Int) -> Double, zeroPoint: Tensor?, outType: DType,
                           shape: [Int]) throws(RuntimeError) -> Tensor {
        let (lo, hi) = try range(ctx, outType)
        let z = zeroPoint?.int64s().first.map(Double.init) ?? 0
        let y = acc.enumerated().map { i, c in min(max((Double(c) * factor(i) + z).rounded(.toNearestOrEven), lo), hi) }
        return Tensor.fromDoubles(y, dtype: outType, shape: shape)
    }

    static let qlinearMatMul: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(3)
        let aScale = try ctx.input(1), bScale = try ctx.input(4), yScale = try ctx.input(6)
        guard a.dtype.isInteger, b.dtype.isInteger else { throw ctx.fail("a and b must be quantised integers, got \(a.dtype) and \(b.dtype)") }
        for s in [aScale, bScale, yScale] where s.elementCount != 1 || !s.dtype.isFloatingPoint {
            throw ctx.fail("scales must be single floating-point values, got \(s.dtype) \(s.shape)")
        }
        let av = try centred(ctx, a, zeroPoint: ctx.optionalInput(2), perRow: true, label: "a")
        let bv = try centred(ctx, b, zeroPoint: ctx.optionalInput(5), perRow: false, label: "b")
        let (acc, shape) = try integerMatMul(ctx, av, a.shape, bv, b.shape)
        let st = aScale.dtype
        let factor = rounded(rounded(aScale.doubles()[0] * bScale.doubles()[0], st) / yScale.doubles()[0], st)
        let yZero = ctx.optionalInput(7)
        return [try requantize(ctx, acc, factor: { _ in factor }, zeroPoint: yZero, outType: yZero?.dtype ?? a.dtype, shape: shape)]
    }

    static let qlinearConv: Kernel = { ctx throws(RuntimeError) in
        if let y = try IntegerConvKernel.qlinear(ctx) { return [y] }
        if let y = try qlinearConvInFloat(ctx) { return [y] }
        let x = try ctx.input(0), w = try ctx.input(3)
        let xScale = try ctx.input(1), wScale = try ctx.input(4), yScale = try ctx.input(6)
        guard x.dtype.isInteger, w.dtype.isInteger else { throw ctx.fail("x and w must be quantised integers, got \(x.dtype) and \(w.dtype)") }
        guard w.rank >= 3 else { throw ctx.fail("w must be [M, C/group, k...], got \(w.shape)") }
        let m = w.shape[0]
        let xv = try centred(ctx, x, zeroPoint: ctx.optionalInput(2), perRow: false, label: "x")
        // The weight zero point is one value or one per output channel.
        var wv = w.int64s()
        if let wz = ctx.optionalInput(5) {
            let z = wz.int64s(), per = w.elementCount / max(m, 1)
            guard z.count == 1 || z.count == m else { throw ctx.fail("w_zero_point must have 1 or \(m) values, got \(z.count)") }
            for i in 0..<wv.count { wv[i] -= z.count == 1 ? z[0] : z[i / per] }
        }
        let (group, g) = try ConvFamilyKernels.convSetup(ctx, x: x, w: w)
        let outputShape = [x.shape[0], m] + g.output
        var acc = ConvFamilyKernels.convolve(x: xv.map(Double.init), xShape: x.shape, w: wv.map(Double.init), wShape: w.shape,
                                             bias: nil, group: group, g).map { Int64($0) }
        if let bias = ctx.optionalInput(8) {
            let bv = bias.int64s()
            guard bv.count == m else { throw ctx.fail("B must have \(m) values, got \(bv.count)") }
            let spatial = g.output.reduce(1, *)
            for i in 0..<acc.count { acc[i] += bv[(i / spatial) % m] }
        }
        let ws = wScale.doubles(), st = xScale.dtype, xs = xScale.doubles()[0], ys = yScale.doubles()[0]
        guard ws.count == 1 || ws.count == m else { throw ctx.fail("w_scale must have 1 or \(m) values, got \(ws.count)") }
        let factors = ws.map { rounded(rounded(xs * $0, st) / ys, st) }
        let spatial = g.output.reduce(1, *)
        let yZero = ctx.optionalInput(7)
        return [try requantize(ctx, acc, factor: { factors.count == 1 ? factors[0] : factors[($0 / spatial) % m] },
                               zeroPoint: yZero, outType: yZero?.dtype ?? x.dtype, shape: outputShape)]
    }
}
