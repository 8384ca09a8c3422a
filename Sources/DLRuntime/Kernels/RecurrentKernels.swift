import DLGraph
import DLKernels
import DLTensor

/// RNN, GRU and LSTM over every float dtype: inputs are read as Double, the layer runs in
/// `DLKernels.Recurrent`, outputs are stored in the input's dtype. Layout 1 (batch-major) is
/// transposed to time-major around the core.
enum RecurrentKernels {
    static var all: [KernelEntry] {
        [.init("RNN", { ctx throws(RuntimeError) in try run(ctx, .rnn) }),
         .init("GRU", { ctx throws(RuntimeError) in try run(ctx, .gru) }),
         .init("LSTM", { ctx throws(RuntimeError) in try run(ctx, .lstm) })]
    }

    static func run(_ ctx: KernelContext, _ kind: Recurrent.Kind) throws(RuntimeError) -> [Tensor] {
        let X = try ctx.input(0), W = try ctx.input(1), R = try ctx.input(2)
        guard X.dtype.isFloatingPoint, W.dtype == X.dtype, R.dtype == X.dtype else {
            throw ctx.fail("X, W and R must share one float dtype, got \(X.dtype), \(W.dtype), \(R.dtype)")
        }
        guard X.rank == 3, W.rank == 3, R.rank == 3 else { throw ctx.fail("X, W and R must be rank 3") }
        let layout = try ctx.int("layout", 0)
        guard layout == 0 || layout == 1 else { throw ctx.fail("layout must be 0 or 1, got \(layout)") }
        let directionName = try ctx.string("direction", "forward")
        let direction: Recurrent.Direction
        switch directionName {
        case "forward": direction = .forward
        case "reverse": direction = .reverse
        case "bidirectional": direction = .bidirectional
        default: throw ctx.fail("unknown direction '\(directionName)'")
        }
        let dirs = direction.count, G = kind.gates
        let seq = layout == 0 ? X.shape[0] : X.shape[1]
        let batch = layout == 0 ? X.shape[1] : X.shape[0]
        let input = X.shape[2]
        let hidden = try ctx.int("hidden_size", W.shape[1] / max(G, 1))
        guard hidden > 0, W.shape == [dirs, G * hidden, input], R.shape == [dirs, G * hidden, hidden] else {
            throw ctx.fail("W \(W.shape) / R \(R.shape) do not fit \(dirs) direction(s), hidden size \(hidden), input size \(input)")
        }
        // Activations: per direction, with alpha/beta consumed in order by the functions that take them.
        let names = try attributeStrings(ctx, "activations") ?? defaultActivations(kind, dirs)
        guard names.count == kind.activationCount * dirs else {
            throw ctx.fail("\(names.count) activations given, \(kind.activationCount * dirs) needed")
        }
        let alphas = ctx.floats("activation_alpha") ?? [], betas = ctx.floats("activation_beta") ?? []
        var ai = 0, bi = 0
        var acts: [Recurrent.Activation] = []
        for n in names {
            var a: Double? = nil, b: Double? = nil
            if Recurrent.Activation.takesAlpha(n), ai < alphas.count { a = Double(alphas[ai]); ai += 1 }
            if Recurrent.Activation.takesBeta(n), bi < betas.count { b = Double(betas[bi]); bi += 1 }
            guard let act = Recurrent.Activation(name: n, alpha: a, beta: b) else { throw ctx.fail("unknown activation '\(n)'") }
            acts.append(act)
        }
        var clip: Double? = nil
        if ctx.node.attribute("clip") != nil {
            let c = Double(try ctx.float("clip", 0))
            guard c > 0 else { throw ctx.fail("clip must be positive, got \(c)") }
            clip = c
        }
        let config = Recurrent.Config(kind: kind, direction: direction, seq: seq, batch: batch, input: input, hidden: hidden,
                                      activations: acts, clip: clip,
                                      linearBeforeReset: try ctx.int("linear_before_reset", 0) != 0,
                                      inputForget: try ctx.int("input_forget", 0) != 0)
        var x = X.doubles()
        if layout == 1 { x = swap01(x, seq: batch, batch: seq, inner: input) }
        let bias = try optional(ctx, 3, shape: [dirs, 2 * G * hidden])
        var lens: [Int]? = nil
        if let s = ctx.optionalInput(4) {
            guard s.shape == [batch], s.dtype.isInteger else { throw ctx.fail("sequence_lens must be [\(batch)] integers, got \(s.shape)") }
            lens = s.int64s().map { Int($0) }
            if let bad = lens?.first(where: { $0 < 0 || $0 > seq }) { throw ctx.fail("sequence length \(bad) is outside 0...\(seq)") }
        }
        let stateShape = layout == 0 ? [dirs, batch, hidden] : [batch, dirs, hidden]
        var h0 = try optional(ctx, 5, shape: stateShape)
        if layout == 1 { h0 = h0.map { swap01($0, seq: batch, batch: dirs, inner: hidden) } }
        var c0: [Double]? = nil, peep: [Double]? = nil
        if kind == .lstm {
            c0 = try optional(ctx, 6, shape: stateShape)
            if layout == 1 { c0 = c0.map { swap01($0, seq: batch, batch: dirs, inner: hidden) } }
            peep = try optional(ctx, 7, shape: [dirs, 3 * hidden])
        }
        let r = Recurrent.run(config, x: x, w: W.doubles(), r: R.doubles(), bias: bias, sequenceLengths: lens,
                              initialHidden: h0, initialCell: c0, peepholes: peep)
        var y = r.y, yh = r.hidden, yc = r.cell
        var yShape = [seq, dirs, batch, hidden]
        if layout == 1 {
            // [seq, dirs, batch, hidden] -> [batch, seq, dirs, hidden]
            var out = [Double](repeating: 0, count: y.count)
            for t in 0..<seq { for d in 0..<dirs { for b in 0..<batch { for j in 0..<hidden {
                out[((b * seq + t) * dirs + d) * hidden + j] = y[((t * dirs + d) * batch + b) * hidden + j]
            } } } }
            y = out
            yShape = [batch, seq, dirs, hidden]
            yh = swap01(yh, seq: dirs, batch: batch, inner: hidden)
            yc = swap01(yc, seq: dirs, batch: batch, inner: hidden)
        }
        var outs = [Tensor.fromDoubles(y, dtype: X.dtype, shape: yShape),
                    Tensor.fromDoubles(yh, dtype: X.dtype, shape: stateShape)]
        if kind == .lstm { outs.append(Tensor.fromDoubles(yc, dtype: X.dtype, shape: stateShape)) }
        return outs
    }

    static func defaultActivations(_ kind: Recurrent.Kind, _ dirs: Int) -> [String] {
        let one: [String]
        switch kind {
        case .rnn: one = ["Tanh"]
        case .gru: one = ["Sigmoid", "Tanh"]
        case .lstm: one = ["Sigmoid", "Tanh", "Tanh"]
        }
        return Array([[String]](repeating: one, count: dirs).joined())
    }

    static func attributeStrings(_ ctx: KernelContext, _ name: String) throws(RuntimeError) -> [String]? {
        switch ctx.node.attribute(name) {
        case nil: return nil
        case .strings(let s)?: return s
        case let other?: throw ctx.fail("attribute '\(name)' must be strings, got \(other.kindName)")
        }
    }

    static func optional(_ ctx: KernelContext, _ i: Int, shape: [Int]) throws(RuntimeError) -> [Double]? {
        guard let t = ctx.optionalInput(i) else { return nil }
        guard t.shape == shape else { throw ctx.fail("input \(i) has shape \(t.shape), expected \(shape)") }
        return t.doubles()
    }

    /// Swaps the first two axes of a [seq, batch, inner] array.
    static func swap01(_ a: [Double], seq: Int, batch: Int, inner: Int) -> [Double] {
        var out = [Double](repeating: 0, count: a.count)
        for s in 0..<seq { for b in 0..<batch { for k in 0..<inner {
            out[(b * seq + s) * inner + k] = a[(s * batch + b) * inner + k]
        } } }
        return out
    }
}
