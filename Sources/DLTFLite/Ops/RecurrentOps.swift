import DLGraph
import DLTensor

/// UNIDIRECTIONAL_SEQUENCE_LSTM as the IR's LSTM, or step by step for TFLite's variants.
///
/// TFLite inputs: 0 x, 1-4 input weights (input, forget, cell, output gates) [units, in], 5-8
/// recurrent weights [units, output units], 9-11 peephole weights (input, forget, output gates),
/// 12-15 gate biases, 16-17 projection weights [output units, units] and bias, 18 output state,
/// 19 cell state (variable tensors, zero at the start of an invocation), 20-23 layer-norm
/// coefficients. No input-gate weights (1 and 5) is CIFG: the input gate is 1 - forget gate.
/// UnidirectionalSequenceLSTMOptions: 0 activation, 1 cell_clip, 2 proj_clip, 3 time_major.
/// The IR's LSTM takes W [1, 4u, in] and R [1, 4u, u] in gate order i, o, f, c and B [1, 8u]
/// (input biases, then recurrent ones, zero here).
extension TFLiteGraphBuilder {
    static var otherOps: [(String, TFLiteImporter.Translator)] {
        [
            ("UNIDIRECTIONAL_SEQUENCE_LSTM", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.sequenceLSTM(op) }),
        ]
    }

    mutating func sequenceLSTM(_ op: TFLiteOp) throws(TFLiteError) {
        let (act, cellClip, projClip, timeMajor) = try options(op) { t throws(FlatBufferError) in
            (try t.scalar(0, Int8(4)), try t.float(1, 0), try t.float(2, 0), try t.bool(3))
        } ?? (4, 0, 0, false)
        guard act == 4 else { throw fail(op, "cell activation \(act) is not supported (only TANH)") }
        guard cellClip >= 0, projClip >= 0 else { throw fail(op, "cell clip \(cellClip) and projection clip \(projClip) must not be negative") }
        let wf = shape(try tensor(op, 2))
        guard wf.count == 2 else { throw fail(op, "input weights must be 2-D, got \(wf)") }
        let units = wf[0], n = base(op)
        let variant = !hasInput(op, 1) || [9, 10, 11, 16, 17, 20, 21, 22, 23].contains { hasInput(op, $0) }
        if variant || cellClip > 0 || projClip > 0 {
            return try unrolledLSTM(op, units: units, cellClip: cellClip, projectionClip: projClip, timeMajor: timeMajor)
        }
        let order = [0, 3, 1, 2]  // i, f, c, o -> i, o, f, c
        var w: [String] = [], r: [String] = [], bias: [String] = []
        for g in order {
            w.append(try input(op, 1 + g))
            r.append(try input(op, 5 + g))
            bias.append(hasInput(op, 12 + g) ? try input(op, 12 + g) : try zeros([units], for: op, base: n + "/zero_bias"))
        }
        let recurrentBias = try zeros([4 * units], for: op, base: n + "/recurrent_bias")
        let axes0 = int64s([0], base: n + "/axes")
        let cat = { (b: inout TFLiteGraphBuilder, xs: [String], what: String) -> String in
            let c = b.emit("Concat", xs, [Attribute(name: "axis", value: .int(0))], base: n + "/" + what + "_concat")
            return b.emit("Unsqueeze", [c, axes0], base: n + "/" + what)
        }
        let W = cat(&self, w, "W"), R = cat(&self, r, "R"), B = cat(&self, bias + [recurrentBias], "B")
        let attrs = [Attribute(name: "hidden_size", value: .int(units)), Attribute(name: "layout", value: .int(timeMajor ? 0 : 1))]
        let y = emit("LSTM", [try input(op, 0), W, R, B], attrs, base: n + "/lstm")
        // Y is [seq, 1, batch, units] (time major) or [batch, seq, 1, units]: drop the direction axis.
        try bind(op, 0, emit("Squeeze", [y, int64s([timeMajor ? 1 : 2], base: n + "/direction_axis")], base: n))
    }

    /// The LSTM step by step, for what the IR's LSTM does not express: TFLite clips the cell
    /// state after each update (the IR's `clip` bounds the gates' inputs), CIFG, peepholes (kept
    /// here with the rest), layer normalization of each gate before its bias, a projection of the
    /// output with its own clip. Needs a sequence length fixed in the file.
    static let maxUnrolledSteps = 4096

    mutating func unrolledLSTM(_ op: TFLiteOp, units: Int, cellClip: Float, projectionClip: Float, timeMajor: Bool) throws(TFLiteError) {
        let xShape = shape(try tensor(op, 0))
        guard xShape.count == 3, xShape[timeMajor ? 0 : 1] >= 1 else { throw fail(op, "input must be 3-D with at least one step, got \(xShape)") }
        let timeAxis = timeMajor ? 0 : 1, batch = xShape[timeMajor ? 1 : 0], steps = xShape[timeAxis]
        // About 16 nodes a step: a crafted sequence length must not build millions of nodes.
        guard steps <= Self.maxUnrolledSteps else {
            throw fail(op, "an LSTM with cell clip, CIFG, peepholes, layer norm or projection is unrolled step by step; \(steps) steps is over the limit of \(Self.maxUnrolledSteps)")
        }
        let n = base(op)
        let cifg = !hasInput(op, 1)
        guard cifg == !hasInput(op, 5) else { throw fail(op, "has input-gate weights for only one of input and recurrent (inputs 1 and 5)") }
        let layerNorm = hasInput(op, 21)
        let gates = cifg ? [1, 2, 3] : [0, 1, 2, 3]  // of i, f, c, o
        var w: [String] = [], r: [String] = [], bias: [String?] = [nil, nil, nil, nil], norms: [String?] = [nil, nil, nil, nil]
        for g in gates {
            w.append(try input(op, 1 + g))
            r.append(try input(op, 5 + g))
            bias[g] = hasInput(op, 12 + g) ? try input(op, 12 + g) : try zeros([units], for: op, base: n + "/zero_bias")
            if layerNorm {
                guard hasInput(op, 20 + g) else { throw fail(op, "is a layer-norm LSTM without coefficients for gate \(g) (input \(20 + g))") }
                norms[g] = try input(op, 20 + g)
            }
        }
        // Peepholes: input and forget gates read the previous cell state, the output gate the new one.
        var peephole: [String?] = [nil, nil, nil, nil]
        for (k, g) in [0, 1, 3].enumerated() where hasInput(op, 9 + k) { peephole[g] = try input(op, 9 + k) }
        let projection = hasInput(op, 16) ? try input(op, 16) : nil
        let outUnits = hasInput(op, 16) ? (shape(try tensor(op, 16)).first ?? units) : units
        let axis0 = [Attribute(name: "axis", value: .int(0))]
        let W = emit("Concat", w, axis0, base: n + "/W"), R = emit("Concat", r, axis0, base: n + "/R")
        // Without layer norm the biases join the input sums; with it they follow the normalization.
        let B: String? = layerNorm ? nil : emit("Concat", gates.compactMap { bias[$0] }, axis0, base: n + "/B")
        let sizes = int64s(gates.map { _ in units }, base: n + "/gate_sizes")
        let transB = [Attribute(name: "transB", value: .int(1))]
        let timeAxes = int64s([timeAxis], base: n + "/time_axis")
        let one = scalar(1, base: n + "/one")
        var h = try zeros([batch, outUnits], for: op, base: n + "/h0")
        var c = try zeros([batch, units], for: op, base: n + "/c0")
        var hs: [String] = []
        let x = try input(op, 0)
        for t in 0..<steps {
            let s = "\(n)/t\(t)"
            let idx = addConstant(Tensor(shape: [], scalars: [Int64(t)]), base: s + "/index")
            let xt = emit("Gather", [x, idx], [Attribute(name: "axis", value: .int(timeAxis))], base: s + "/x")
            let gx = emit("Gemm", [xt, W] + (B.map { [$0] } ?? []), transB, base: s + "/input_gates")
            let sums = emit("Gemm", [h, R, gx], transB, base: s + "/gates")
            let parts = gates.map { _ in uniqueName(s + "/gate") }
            nodes.append(Node(name: uniqueName(s + "/split"), opType: "Split", inputs: [sums, sizes], outputs: parts,
                              attributes: [Attribute(name: "axis", value: .int(1))]))
            var part: [String?] = [nil, nil, nil, nil]
            for (k, g) in gates.enumerated() { part[g] = parts[k] }
            func gate(_ b: inout TFLiteGraphBuilder, _ g: Int, cell: String, _ name: String) -> String {
                var v = part[g] ?? ""
                if let p = peephole[g] { v = b.emit("Add", [v, b.emit("Mul", [cell, p], base: s + "/" + name + "_peephole")], base: s + "/" + name + "_with_peephole") }
                if let coefficients = norms[g], let beta = bias[g] {
                    v = b.emit("LayerNormalization", [v, coefficients, beta], [Attribute(name: "axis", value: .int(-1)), Attribute(name: "epsilon", value: .float(1e-8))], base: s + "/" + name + "_normalized")
                }
                return v
            }
            let f = emit("Sigmoid", [gate(&self, 1, cell: c, "f")], base: s + "/f")
            let i = cifg ? emit("Sub", [one, f], base: s + "/i") : emit("Sigmoid", [gate(&self, 0, cell: c, "i")], base: s + "/i")
            let g = emit("Tanh", [gate(&self, 2, cell: c, "c")], base: s + "/g")
            c = emit("Add", [emit("Mul", [f, c], base: s + "/fc"), emit("Mul", [i, g], base: s + "/ig")], base: s + "/c_raw")
            if cellClip > 0 { c = emit("Clip", [c, scalar(-cellClip, base: s + "/clip_min"), scalar(cellClip, base: s + "/clip_max")], base: s + "/c") }
            let o = emit("Sigmoid", [gate(&self, 3, cell: c, "o")], base: s + "/o")
            h = emit("Mul", [o, emit("Tanh", [c], base: s + "/tanh_c")], base: s + "/h")
            if let projection {
                h = emit("Gemm", [h, projection] + (hasInput(op, 17) ? [try input(op, 17)] : []), transB, base: s + "/projected")
                if projectionClip > 0 {
                    h = emit("Clip", [h, scalar(-projectionClip, base: s + "/proj_min"), scalar(projectionClip, base: s + "/proj_max")], base: s + "/h_clipped")
                }
            }
            hs.append(emit("Unsqueeze", [h, timeAxes], base: s + "/h_seq"))
        }
        try bind(op, 0, emit("Concat", hs, [Attribute(name: "axis", value: .int(timeAxis))], base: n))
    }
}
