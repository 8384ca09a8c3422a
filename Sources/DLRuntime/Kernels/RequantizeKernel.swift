import DLGraph
import DLTensor

/// `ai.dlkit.Requantize(x, left, multiplier, right, real_scale, y_scale, y_zero_point)` (see
/// `FuseRequantize`): per element, with the float64 constants taken at the element's position on
/// the last axis when they hold one value per position,
///
///     h = (Double(x) * left) * multiplier;  t = floor(h + 0.5);  d = t * right
///     u = floor(|d| + 0.5) * sign(d);  r = Float(u) * real_scale;  r = act(r)
///     y = saturate(round_half_even(Double(r / y_scale)) + y_zero_point)
///
/// the same operations in the same order as the chain of IR ops it replaces (Cast, Mul, Add,
/// Floor, Abs, Sign, Cast, Mul, Relu or Clip, QuantizeLinear), so the same bits, in one pass
/// over typed buffers.
enum RequantizeKernel {
    static let kernel: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let multiplier = try ctx.input(2), right = try ctx.input(3), left = ctx.optionalInput(1)
        let realScale = try ctx.input(4), yScale = try ctx.input(5), zero = try ctx.input(6)
        for (t, label) in [(left, "left"), (multiplier, "multiplier"), (right, "right")] {
            guard let t else { continue }
            guard t.dtype == .float64, t.rank <= 1 else { throw ctx.fail("\(label) must be float64, one value or a vector, got \(t.dtype) \(t.shape)") }
        }
        guard realScale.dtype == .float32, realScale.elementCount == 1, yScale.dtype == .float32, yScale.elementCount == 1,
              let rs = realScale.scalars(as: Float.self).first, let ys = yScale.scalars(as: Float.self).first else {
            throw ctx.fail("real_scale and y_scale must be float32 scalars, got \(realScale.dtype) \(realScale.shape) and \(yScale.dtype) \(yScale.shape)")
        }
        guard zero.elementCount == 1, zero.dtype == .int8 || zero.dtype == .uint8, let z = zero.doubles().first else {
            throw ctx.fail("y_zero_point must be one int8 or uint8 value, got \(zero.dtype) \(zero.shape)")
        }
        guard x.dtype.isInteger || x.dtype.isFloatingPoint else { throw ctx.fail("x must be numeric, got \(x.dtype)") }
        let channels = x.rank == 0 ? 1 : x.shape[x.rank - 1]
        func perChannel(_ t: Tensor?, _ label: String) throws(RuntimeError) -> [Double] {
            guard let t else { return [1] }
            let v = t.scalars(as: Double.self)
            guard v.count == 1 || v.count == channels else {
                throw ctx.fail("\(label) has \(v.count) values for a last axis of \(channels) (x \(x.shape))")
            }
            return v
        }
        let l = try perChannel(left, "left"), m = try perChannel(multiplier, "multiplier"), r = try perChannel(right, "right")
        let act = try ctx.string("activation", "")
        var (lo, hi): (Float, Float) = (-.infinity, .infinity)
        switch act {
        case "": break
        case "Relu": lo = 0
        case "Clip": (lo, hi) = (try ctx.float("activation_alpha", -.infinity), try ctx.float("activation_beta", .infinity))
        default: throw ctx.fail("activation \(act) is not one Requantize applies (Relu, Clip)")
        }
        let (qmin, qmax): (Double, Double) = zero.dtype == .int8 ? (-128, 127) : (0, 255)
        let n = x.elementCount
        let wide: [Double] = x.dtype == .int32 ? [] : x.doubles()
        var out = ctx.makeOutput(zero.dtype, shape: x.shape)
        guard n > 0 else { return [out] }
        let perC = l.count > 1 || m.count > 1 || r.count > 1
        func value(_ xi: Double, _ c: Int) -> Double {
            let h = (xi * l[l.count == 1 ? 0 : c]) * m[m.count == 1 ? 0 : c]
            let d = (h + 0.5).rounded(.down) * r[r.count == 1 ? 0 : c]
            let magnitude = (Swift.abs(d) + 0.5).rounded(.down)
            let u = magnitude * (d > 0 ? 1 : d < 0 ? -1 : 0)
            var real = Float(u) * rs
            // Relu and Clip as their kernels: max(x, 0), min(max(x, lo), hi).
            if act == "Relu" { real = Swift.max(real, 0) } else if act == "Clip" { real = Swift.min(Swift.max(real, lo), hi) }
            let q = Double(real / ys).rounded(.toNearestOrEven) + z
            return q.isNaN ? 0 : Swift.min(Swift.max(q, qmin), qmax)
        }
        func fill<T: TensorScalar & BinaryInteger>(_: T.Type) {
            out.withUnsafeMutableBufferPointerInPlace(as: T.self) { dst in
                if x.dtype == .int32 {
                    x.withUnsafeBufferPointer(as: Int32.self) { src in
                        for i in 0..<n { dst[i] = T(value(Double(src[i]), perC ? i % channels : 0)) }
                    }
                } else {
                    for i in 0..<n { dst[i] = T(value(wide[i], perC ? i % channels : 0)) }
                }
            }
        }
        if zero.dtype == .int8 { fill(Int8.self) } else { fill(UInt8.self) }
        return [out]
    }
}
