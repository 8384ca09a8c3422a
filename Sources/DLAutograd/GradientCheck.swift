import DLGraph
import DLTensor

/// Compares the rules' gradients with central finite differences.
///
/// The scalar checked is `L = Σ_outputs Σ_i w_i · y_i` with fixed pseudo-random weights `w`, so
/// every output element contributes. Kernels run in float32, so the differences use a step of
/// `epsilon` and the loss is summed in Double.
public enum GradientCheck {
    public struct Result: Sendable {
        /// The largest |analytic - numeric| / max(1, |numeric|) over all checked elements.
        public var maxError: Double
        /// Where it occurred ("value[index]").
        public var worst: String
    }

    public static func run(graph: Graph, inputs: [String: Tensor], wrt: [String], epsilon: Float = 1e-2, training: Bool = false) throws(AutogradError) -> Result {
        let diff = try Differentiator(graph: graph, wrt: wrt)
        var rng = TrainingRNG(seed: 7)
        let tape = try diff.forward(inputs, training: training, rng: &rng)
        var weights: [String: [Float]] = [:]
        var seeds: [String: Tensor] = [:]
        var wrng = TrainingRNG(seed: 11)
        for o in graph.outputs {
            guard let y = tape.value(o.name) else { throw .unknownValue(o.name) }
            let w = (0..<y.elementCount).map { _ in wrng.nextUnitFloat() * 2 - 1 }
            weights[o.name] = w
            seeds[o.name] = Tensor(shape: y.shape, scalars: w)
        }
        let grads = try diff.backward(tape, seeds: seeds)
        func loss(_ feed: [String: Tensor]) throws(AutogradError) -> Double {
            var r = TrainingRNG(seed: 7)
            let t = try diff.forward(feed, training: training, rng: &r)
            var s = 0.0
            for (name, w) in weights {
                guard let y = t.value(name) else { continue }
                for (a, b) in zip(Ops.floats(y), w) { s += Double(a) * Double(b) }
            }
            return s
        }
        var result = Result(maxError: 0, worst: "")
        var base = inputs
        for (name, t) in diff.graph.initializers where base[name] == nil { base[name] = t }
        for name in wrt {
            guard let x = base[name], let g = grads[name] else { throw .unknownValue(name) }
            let xv = Ops.floats(x), gv = Ops.floats(g)
            for i in 0..<xv.count {
                var plus = xv, minus = xv
                plus[i] += epsilon
                minus[i] -= epsilon
                var feed = base
                feed[name] = Tensor(shape: x.shape, scalars: plus)
                let lp = try loss(feed)
                feed[name] = Tensor(shape: x.shape, scalars: minus)
                let lm = try loss(feed)
                let numeric = (lp - lm) / (Double(plus[i]) - Double(minus[i]))
                let err = abs(Double(gv[i]) - numeric) / max(1, abs(numeric))
                if err > result.maxError { result = Result(maxError: err, worst: "\(name)[\(i)]: analytic \(gv[i]), numeric \(numeric)") }
            }
        }
        return result
    }
}
