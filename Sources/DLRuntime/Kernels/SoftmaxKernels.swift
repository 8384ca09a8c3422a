#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLKernels
import DLTensor

/// Softmax, LogSoftmax and Hardmax along one axis (opset ≥ 13 form; older models are rewritten at
/// import), and the two losses built on them: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
/// float32 Softmax/LogSoftmax use the DLKernels loops; other float types compute in Double.
enum SoftmaxKernels {
    static var all: [KernelEntry] {
        [.init("Softmax", axisOp(.softmax)), .init("LogSoftmax", axisOp(.logSoftmax)), .init("Hardmax", axisOp(.hardmax)),
         .init("NegativeLogLikelihoodLoss", nllLoss), .init("SoftmaxCrossEntropyLoss", softmaxCrossEntropy)]
    }

    enum AxisOp { case softmax, logSoftmax, hardmax }

    static func axisOp(_ op: AxisOp) -> Kernel {
        { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            guard x.dtype.isFloatingPoint else { throw ctx.fail("\(ctx.node.opType) needs a floating-point input, got \(x.dtype)") }
            let a = try ctx.axis(try ctx.int("axis", -1), rank: max(x.rank, 1))
            let (outer, size, inner) = x.rank == 0 ? (1, 1, 1) : IndexMath.around(x.shape, axis: a)
            if x.dtype == .float32, op != .hardmax {
                // Every element is written: a recycled buffer in planned runs.
                let out = ctx.makeOutput(.float32, shape: x.shape)
                guard x.elementCount > 0 else { return [out] }
                x.withUnsafeBufferPointer(as: Float.self) { ps in
                    out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { pd in
                        guard let src = ps.baseAddress, let dst = pd.baseAddress else { return }
                        if op == .softmax {
                            Softmax.softmax(src, dst, outer: outer, axisSize: size, inner: inner)
                        } else {
                            Softmax.logSoftmax(src, dst, outer: outer, axisSize: size, inner: inner)
                        }
                    }
                }
                return [out]
            }
            var v = x.doubles()
            apply(op, &v, outer: outer, size: size, inner: inner)
            return [Tensor.fromDoubles(v, dtype: x.dtype, shape: x.shape)]
        }
    }

    /// Applies `op` in place along the middle axis of an [outer, size, inner] buffer.
    static func apply(_ op: AxisOp, _ v: inout [Double], outer: Int, size: Int, inner: Int) {
        guard size > 0 else { return }
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * size * inner + i
                var m = v[base], arg = 0
                for k in 1..<size where v[base + k * inner] > m {
                    m = v[base + k * inner]
                    arg = k
                }
                switch op {
                case .hardmax:
                    for k in 0..<size { v[base + k * inner] = k == arg ? 1 : 0 }
                case .softmax, .logSoftmax:
                    let shift = m.isFinite ? m : 0
                    var sum = 0.0
                    for k in 0..<size { sum += exp(v[base + k * inner] - shift) }
                    if op == .softmax {
                        for k in 0..<size { v[base + k * inner] = exp(v[base + k * inner] - shift) / sum }
                    } else {
                        let l = log(sum)
                        for k in 0..<size { v[base + k * inner] = v[base + k * inner] - shift - l }
                    }
                }
            }
        }
    }

    /// Negative log-likelihood of `logProb` [N, C, d...] at `labels` [N, d...], weighted and reduced
    /// the ONNX way: ignored positions weigh 0; "mean" divides by the summed weights.
    static func nll(_ ctx: KernelContext, logProb: [Double], shape: [Int], labels: Tensor, weights: Tensor?,
                    dtype: DType) throws(RuntimeError) -> Tensor {
        guard shape.count >= 2 else { throw ctx.fail("the input must be [N, C, ...], got \(shape)") }
        let n = shape[0], c = shape[1], d = shape[2...].reduce(1, *)
        guard labels.dtype.isInteger, labels.shape == [n] + Array(shape[2...]) else {
            throw ctx.fail("labels must be integers of shape \([n] + Array(shape[2...])), got \(labels.dtype) \(labels.shape)")
        }
        let w = weights?.doubles()
        if let w, w.count != c { throw ctx.fail("weights must have \(c) elements, got \(w.count)") }
        let reduction = try ctx.string("reduction", "mean")
        let ignore: Int64? = ctx.node.attribute("ignore_index") == nil ? nil : Int64(try ctx.int("ignore_index", 0))
        let lab = labels.int64s()
        var loss = [Double](repeating: 0, count: n * d), weight = [Double](repeating: 0, count: n * d)
        for i in 0..<n {
            for j in 0..<d {
                let t = lab[i * d + j]
                if let ignore, t == ignore { continue }
                guard t >= 0, t < c else { throw ctx.fail("label \(t) is outside [0, \(c))") }
                let wt = w?[Int(t)] ?? 1
                loss[i * d + j] = -logProb[(i * c + Int(t)) * d + j] * wt
                weight[i * d + j] = wt
            }
        }
        switch reduction {
        case "none": return Tensor.fromDoubles(loss, dtype: dtype, shape: labels.shape)
        case "sum": return Tensor.fromDoubles([loss.reduce(0, +)], dtype: dtype, shape: [])
        case "mean": return Tensor.fromDoubles([loss.reduce(0, +) / weight.reduce(0, +)], dtype: dtype, shape: [])
        default: throw ctx.fail("reduction '\(reduction)' is not one of none, sum, mean")
        }
    }

    static let nllLoss: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint else { throw ctx.fail("input must be floating-point, got \(x.dtype)") }
        return [try nll(ctx, logProb: x.doubles(), shape: x.shape, labels: try ctx.input(1),
                        weights: ctx.optionalInput(2), dtype: x.dtype)]
    }

    static let softmaxCrossEntropy: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint, x.rank >= 2 else { throw ctx.fail("scores must be floating-point [N, C, ...], got \(x.dtype) \(x.shape)") }
        var v = x.doubles()
        let (outer, size, inner) = IndexMath.around(x.shape, axis: 1)
        apply(.logSoftmax, &v, outer: outer, size: size, inner: inner)
        let loss = try nll(ctx, logProb: v, shape: x.shape, labels: try ctx.input(1), weights: ctx.optionalInput(2), dtype: x.dtype)
        return [loss, Tensor.fromDoubles(v, dtype: x.dtype, shape: x.shape)]
    }
}
