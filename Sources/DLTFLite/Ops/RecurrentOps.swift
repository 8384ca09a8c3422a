import DLGraph
import DLTensor

/// UNIDIRECTIONAL_SEQUENCE_LSTM as the IR's LSTM.
///
/// TFLite inputs: 0 x, 1-4 input weights (input, forget, cell, output gates) [units, in], 5-8
/// recurrent weights [units, units], 9-11 peephole weights, 12-15 gate biases, 16-17 projection,
/// 18 output state, 19 cell state (variable tensors, zero at the start of an invocation),
/// 20-23 layer-norm coefficients. UnidirectionalSequenceLSTMOptions: 0 activation, 1 cell_clip,
/// 2 proj_clip, 3 time_major. The IR's LSTM takes W [1, 4u, in] and R [1, 4u, u] in gate order
/// i, o, f, c and B [1, 8u] (input biases, then recurrent ones, zero here).
extension TFLiteGraphBuilder {
    static var otherOps: [(String, TFLiteImporter.Translator)] {
        [
            ("UNIDIRECTIONAL_SEQUENCE_LSTM", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.sequenceLSTM(op) }),
        ]
    }

    mutating func sequenceLSTM(_ op: TFLiteOp) throws(TFLiteError) {
        for k in [9, 10, 11, 16, 17, 20, 21, 22, 23] where hasInput(op, k) {
            throw fail(op, "peephole, projection and layer-norm LSTMs are not supported yet (input \(k) is set)")
        }
        let (act, cellClip, projClip, timeMajor) = try options(op) { t throws(FlatBufferError) in
            (try t.scalar(0, Int8(4)), try t.float(1, 0), try t.float(2, 0), try t.bool(3))
        } ?? (4, 0, 0, false)
        guard act == 4 else { throw fail(op, "cell activation \(act) is not supported (only TANH)") }
        guard projClip == 0 else { throw fail(op, "projection clipping is not supported") }
        guard cellClip >= 0 else { throw fail(op, "cell clip \(cellClip) is negative") }
        let w1 = shape(try tensor(op, 1))
        guard w1.count == 2 else { throw fail(op, "input weights must be 2-D, got \(w1)") }
        let units = w1[0], n = base(op)
        if cellClip > 0 { return try unrolledLSTM(op, units: units, clip: cellClip, timeMajor: timeMajor) }
        let order = [0, 3, 1, 2]  // i, f, c, o -> i, o, f, c
        var w: [String] = [], r: [String] = [], bias: [String] = []
        for g in order {
            w.append(try input(op, 1 + g))
            r.append(try input(op, 5 + g))
            bias.append(hasInput(op, 12 + g) ? try input(op, 12 + g)
                        : addConstant(Tensor(zeros: .float32, shape: [units]), base: n + "/zero_bias"))
        }
        let zeros = addConstant(Tensor(zeros: .float32, shape: [4 * units]), base: n + "/recurrent_bias")
        let axes0 = int64s([0], base: n + "/axes")
        let cat = { (b: inout TFLiteGraphBuilder, xs: [String], what: String) -> String in
            let c = b.emit("Concat", xs, [Attribute(name: "axis", value: .int(0))], base: n + "/" + what + "_concat")
            return b.emit("Unsqueeze", [c, axes0], base: n + "/" + what)
        }
        let W = cat(&self, w, "W"), R = cat(&self, r, "R"), B = cat(&self, bias + [zeros], "B")
        let attrs = [Attribute(name: "hidden_size", value: .int(units)), Attribute(name: "layout", value: .int(timeMajor ? 0 : 1))]
        let y = emit("LSTM", [try input(op, 0), W, R, B], attrs, base: n + "/lstm")
        // Y is [seq, 1, batch, units] (time major) or [batch, seq, 1, units]: drop the direction axis.
        try bind(op, 0, emit("Squeeze", [y, int64s([timeMajor ? 1 : 2], base: n + "/direction_axis")], base: n))
    }

    /// The LSTM step by step, for a cell clip: TFLite clips the cell state after each update,
    /// which the IR's LSTM (whose `clip` bounds the gates' inputs) does not express. Needs a
    /// sequence length fixed in the file.
    static let maxUnrolledSteps = 4096

    mutating func unrolledLSTM(_ op: TFLiteOp, units: Int, clip: Float, timeMajor: Bool) throws(TFLiteError) {
        let xShape = shape(try tensor(op, 0))
        guard xShape.count == 3, xShape[timeMajor ? 0 : 1] >= 1 else { throw fail(op, "input must be 3-D with at least one step, got \(xShape)") }
        let timeAxis = timeMajor ? 0 : 1, batch = xShape[timeMajor ? 1 : 0], steps = xShape[timeAxis]
        // About 16 nodes a step: a crafted sequence length must not build millions of nodes.
        guard steps <= Self.maxUnrolledSteps else {
            throw fail(op, "a cell-clipped LSTM is unrolled step by step; \(steps) steps is over the limit of \(Self.maxUnrolledSteps)")
        }
        let n = base(op)
        var w: [String] = [], r: [String] = [], bias: [String] = []
        for g in 0..<4 {  // i, f, c, o
            w.append(try input(op, 1 + g))
            r.append(try input(op, 5 + g))
            bias.append(hasInput(op, 12 + g) ? try input(op, 12 + g) : addConstant(Tensor(zeros: .float32, shape: [units]), base: n + "/zero_bias"))
        }
        let axis0 = [Attribute(name: "axis", value: .int(0))]
        let W = emit("Concat", w, axis0, base: n + "/W"), R = emit("Concat", r, axis0, base: n + "/R")
        let B = emit("Concat", bias, axis0, base: n + "/B")
        let sizes = int64s([units, units, units, units], base: n + "/gate_sizes")
        let lo = scalar(-clip, base: n + "/clip_min"), hi = scalar(clip, base: n + "/clip_max")
        let timeAxes = int64s([timeAxis], base: n + "/time_axis")
        var h = addConstant(Tensor(zeros: .float32, shape: [batch, units]), base: n + "/h0")
        var c = addConstant(Tensor(zeros: .float32, shape: [batch, units]), base: n + "/c0")
        var hs: [String] = []
        let x = try input(op, 0)
        for t in 0..<steps {
            let s = "\(n)/t\(t)"
            let idx = addConstant(Tensor(shape: [], scalars: [Int64(t)]), base: s + "/index")
            let xt = emit("Gather", [x, idx], [Attribute(name: "axis", value: .int(timeAxis))], base: s + "/x")
            let gx = emit("Gemm", [xt, W, B], [Attribute(name: "transB", value: .int(1))], base: s + "/input_gates")
            let gates = emit("Gemm", [h, R, gx], [Attribute(name: "transB", value: .int(1))], base: s + "/gates")
            let parts = (0..<4).map { _ in uniqueName(s + "/gate") }
            nodes.append(Node(name: uniqueName(s + "/split"), opType: "Split", inputs: [gates, sizes], outputs: parts,
                              attributes: [Attribute(name: "axis", value: .int(1))]))
            let i = emit("Sigmoid", [parts[0]], base: s + "/i"), f = emit("Sigmoid", [parts[1]], base: s + "/f")
            let g = emit("Tanh", [parts[2]], base: s + "/g"), o = emit("Sigmoid", [parts[3]], base: s + "/o")
            let cNew = emit("Add", [emit("Mul", [f, c], base: s + "/fc"), emit("Mul", [i, g], base: s + "/ig")], base: s + "/c_raw")
            c = emit("Clip", [cNew, lo, hi], base: s + "/c")
            h = emit("Mul", [o, emit("Tanh", [c], base: s + "/tanh_c")], base: s + "/h")
            hs.append(emit("Unsqueeze", [h, timeAxes], base: s + "/h_seq"))
        }
        try bind(op, 0, emit("Concat", hs, [Attribute(name: "axis", value: .int(timeAxis))], base: n))
    }
}
