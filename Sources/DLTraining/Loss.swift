import DLTensor
import Foundation

/// Loss functions with PyTorch's definitions and `mean`/`sum` reductions. Each returns the loss
/// and its gradient with respect to the model output.
public enum Loss: Sendable, Equatable {
    case mse, l1
    case smoothL1(beta: Double)
    case huber(delta: Double)
    /// Targets are class indices (int64, -100 ignored) or probabilities (float, same shape as the input).
    case crossEntropy(labelSmoothing: Double)
    case nll
    case bce
    case bceWithLogits

    public enum Reduction: String, Sendable { case mean, sum }

    /// The name on the command line (`mse`, `cross_entropy`, ...).
    public static func named(_ s: String) -> Loss? {
        switch s {
        case "mse": .mse
        case "l1": .l1
        case "smooth_l1": .smoothL1(beta: 1)
        case "huber": .huber(delta: 1)
        case "cross_entropy": .crossEntropy(labelSmoothing: 0)
        case "nll": .nll
        case "bce": .bce
        case "bce_with_logits": .bceWithLogits
        default: nil
        }
    }

    public var name: String {
        switch self {
        case .mse: "mse"
        case .l1: "l1"
        case .smoothL1: "smooth_l1"
        case .huber: "huber"
        case .crossEntropy: "cross_entropy"
        case .nll: "nll"
        case .bce: "bce"
        case .bceWithLogits: "bce_with_logits"
        }
    }

    /// Whether targets are class indices (one per sample) rather than values shaped like the output.
    public var takesClassIndices: Bool { self == .nll || isCrossEntropy }
    var isCrossEntropy: Bool { if case .crossEntropy = self { return true } else { return false } }

    /// - Returns: the loss and d loss / d output (float32, the output's shape).
    /// - Throws: `TrainingError.badTarget` for shapes that do not fit or class indices out of range.
    public func evaluate(output: Tensor, target: Tensor, reduction: Reduction = .mean) throws(TrainingError) -> (loss: Double, grad: Tensor) {
        guard output.dtype == .float32 else { throw .badTarget("the model output is \(output.dtype), not float32") }
        let x = output.scalars(as: Float.self)
        switch self {
        case .crossEntropy, .nll:
            guard output.rank >= 1 else { throw .badTarget("\(name) needs an output with a class axis") }
            let n = output.shape[0], classes = output.rank >= 2 ? output.shape[1] : output.shape[0]
            let inner = output.rank >= 2 ? output.shape.dropFirst(2).reduce(1, *) : 1
            let outer = output.rank >= 2 ? n : 1
            if target.dtype.isInteger {
                let expected = output.rank >= 2 ? [n] + output.shape.dropFirst(2) : []
                guard target.shape == expected else {
                    throw .badTarget("class-index targets have shape \(target.shape); the output \(output.shape) needs \(expected)")
                }
                return try indexLoss(x, shape: output.shape, outer: outer, classes: classes, inner: inner,
                                     targets: target.doubles().map { Int($0) }, reduction: reduction)
            }
            guard isCrossEntropy else { throw .badTarget("nll needs class indices (an integer target), got \(target.dtype)") }
            guard target.shape == output.shape else {
                throw .badTarget("probability targets have shape \(target.shape); the output has \(output.shape)")
            }
            return probabilityLoss(x, shape: output.shape, outer: outer, classes: classes, inner: inner,
                                   targets: target.doubles().map { Float($0) }, reduction: reduction)
        default:
            guard target.elementCount == output.elementCount else {
                throw .badTarget("target has shape \(target.shape), the output \(output.shape)")
            }
            let t = target.doubles().map { Float($0) }
            return try elementLoss(x, t, shape: output.shape, reduction: reduction)
        }
    }

    private func elementLoss(_ x: [Float], _ t: [Float], shape: [Int], reduction: Reduction) throws(TrainingError) -> (Double, Tensor) {
        let n = x.count
        var total = 0.0
        var g = [Float](repeating: 0, count: n)
        let scale: Float = reduction == .mean ? 1 / Float(max(n, 1)) : 1
        for i in 0..<n {
            let d = x[i] - t[i]
            switch self {
            case .mse: total += Double(d * d); g[i] = 2 * d * scale
            case .l1: total += Double(abs(d)); g[i] = (d > 0 ? 1 : (d < 0 ? -1 : 0)) * scale
            case .smoothL1(let b):
                let beta = Float(b)
                if abs(d) < beta { total += Double(0.5 * d * d / beta); g[i] = d / beta * scale } else {
                    total += Double(abs(d) - 0.5 * beta); g[i] = (d > 0 ? 1 : -1) * scale
                }
            case .huber(let dl):
                let delta = Float(dl)
                if abs(d) <= delta { total += Double(0.5 * d * d); g[i] = d * scale } else {
                    total += Double(delta * (abs(d) - 0.5 * delta)); g[i] = delta * (d > 0 ? 1 : -1) * scale
                }
            case .bce:
                let p = x[i], y = t[i]
                guard p >= 0 && p <= 1 else { throw .badTarget("bce needs outputs in [0, 1]; element \(i) is \(p) (use bce_with_logits on logits)") }
                let lp = max(Foundation.log(p), -100), lq = max(Foundation.log(1 - p), -100)
                total += Double(-(y * lp + (1 - y) * lq))
                g[i] = (p - y) / max((1 - p) * p, 1e-12) * scale
            case .bceWithLogits:
                let z = x[i], y = t[i]
                total += Double(max(z, 0) - z * y + Foundation.log1p(Foundation.exp(-abs(z))))
                g[i] = (1 / (1 + Foundation.exp(-z)) - y) * scale
            default: break
            }
        }
        if reduction == .mean { total /= Double(max(n, 1)) }
        return (total, Tensor(shape: shape, scalars: g))
    }

    /// Log-softmax over the class axis of position (o, i).
    private func logSoftmax(_ x: [Float], o: Int, i: Int, classes: Int, inner: Int) -> [Float] {
        var m = -Float.infinity
        for c in 0..<classes { m = max(m, x[(o * classes + c) * inner + i]) }
        var s: Float = 0
        for c in 0..<classes { s += Foundation.exp(x[(o * classes + c) * inner + i] - m) }
        let lse = m + Foundation.log(s)
        return (0..<classes).map { x[(o * classes + $0) * inner + i] - lse }
    }

    private func indexLoss(_ x: [Float], shape: [Int], outer: Int, classes: Int, inner: Int, targets: [Int],
                           reduction: Reduction) throws(TrainingError) -> (Double, Tensor) {
        let eps: Float = { if case .crossEntropy(let s) = self { return Float(s) } else { return 0 } }()
        var g = [Float](repeating: 0, count: x.count)
        var total = 0.0
        var counted = 0
        for o in 0..<outer {
            for i in 0..<inner {
                let t = targets[o * inner + i]
                if t == -100 { continue }
                guard t >= 0 && t < classes else {
                    throw .badTarget("target \(t) at sample \(o) is out of range for \(classes) classes (0..<\(classes))")
                }
                counted += 1
                if isCrossEntropy {
                    let lp = logSoftmax(x, o: o, i: i, classes: classes, inner: inner)
                    var l = -(1 - eps) * lp[t]
                    if eps > 0 { l -= eps / Float(classes) * lp.reduce(0, +) }
                    total += Double(l)
                    for c in 0..<classes {
                        let target: Float = (c == t ? 1 - eps : 0) + eps / Float(classes)
                        g[(o * classes + c) * inner + i] = Foundation.exp(lp[c]) - target
                    }
                } else {
                    total += Double(-x[(o * classes + t) * inner + i])
                    g[(o * classes + t) * inner + i] = -1
                }
            }
        }
        if reduction == .mean {
            let scale = counted > 0 ? 1 / Float(counted) : 0
            for k in 0..<g.count { g[k] *= scale }
            total = counted > 0 ? total / Double(counted) : .nan
        }
        return (total, Tensor(shape: shape, scalars: g))
    }

    private func probabilityLoss(_ x: [Float], shape: [Int], outer: Int, classes: Int, inner: Int, targets: [Float],
                                 reduction: Reduction) -> (Double, Tensor) {
        let eps: Float = { if case .crossEntropy(let s) = self { return Float(s) } else { return 0 } }()
        var g = [Float](repeating: 0, count: x.count)
        var total = 0.0
        for o in 0..<outer {
            for i in 0..<inner {
                let lp = logSoftmax(x, o: o, i: i, classes: classes, inner: inner)
                var tsum: Float = 0
                var ts = [Float](repeating: 0, count: classes)
                for c in 0..<classes {
                    ts[c] = targets[(o * classes + c) * inner + i] * (1 - eps) + eps / Float(classes)
                    tsum += ts[c]
                }
                for c in 0..<classes {
                    total += Double(-ts[c] * lp[c])
                    g[(o * classes + c) * inner + i] = Foundation.exp(lp[c]) * tsum - ts[c]
                }
            }
        }
        if reduction == .mean {
            let count = outer * inner
            for k in 0..<g.count { g[k] /= Float(count) }
            total /= Double(count)
        }
        return (total, Tensor(shape: shape, scalars: g))
    }
}
