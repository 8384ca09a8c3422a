import DLGraph
import DLSupport
import DLTensor

extension GraphBuilder {
    enum RNNKind { case simple, lstm, gru }

    static func rnnKind(_ cls: String) -> RNNKind? {
        switch cls {
        case "SimpleRNN": .simple
        case "LSTM": .lstm
        case "GRU": .gru
        default: nil
        }
    }

    func onnxActivation(_ s: LayerSpec, _ j: JSON?) throws(KerasError) -> (String, Float?, Float?) {
        switch Self.activationName(j) {
        case "sigmoid": return ("Sigmoid", nil, nil)
        case "tanh": return ("Tanh", nil, nil)
        case "relu": return ("Relu", nil, nil)
        case "linear": return ("Affine", 1, 0)
        case "hard_sigmoid": return ("HardSigmoid", keras3 ? Float(1.0 / 6.0) : 0.2, 0.5)
        case let a: throw fail(s, "recurrent activation '\(a ?? "?")' is not supported")
        }
    }

    /// W [1, G·u, in], R [1, G·u, u] and B [1, 2·G·u] of one direction, from the stored weights at `first`.
    mutating func rnnWeights(_ s: LayerSpec, cfg: JSON, kind: RNNKind, units: Int, inDim: Int, ws: [Tensor], first: Int,
                             k3: String, legacy: String, rec: inout KerasLayerRecord) throws(KerasError) -> (String, String, String?) {
        let G = kind == .lstm ? 4 : kind == .gru ? 3 : 1
        let gates: [Int]? = kind == .lstm ? [0, 3, 1, 2] : nil
        let useBias = cfg["use_bias"]?.boolValue ?? true
        let resetAfter = kind == .gru && (cfg["reset_after"]?.boolValue ?? true)
        let W = try variable(s, ws, first, name: "kernel", keras3Path: "\(k3)/0", legacy: "\(legacy)/kernel", shape: [inDim, G * units],
                             layout: WeightLayout(gates: gates, perm: [1, 0], irShape: [1, G * units, inDim]), record: &rec)
        let R = try variable(s, ws, first + 1, name: "recurrent_kernel", keras3Path: "\(k3)/1", legacy: "\(legacy)/recurrent_kernel",
                             shape: [units, G * units], layout: WeightLayout(gates: gates, perm: [1, 0], irShape: [1, G * units, units]), record: &rec)
        guard useBias else { return (W, R, nil) }
        if resetAfter {
            let B = try variable(s, ws, first + 2, name: "bias", keras3Path: "\(k3)/2", legacy: "\(legacy)/bias", shape: [2, G * units],
                                 layout: WeightLayout(irShape: [1, 2 * G * units]), record: &rec)
            return (W, R, B)
        }
        let b = try variable(s, ws, first + 2, name: "bias", keras3Path: "\(k3)/2", legacy: "\(legacy)/bias", shape: [G * units],
                             layout: WeightLayout(gates: gates, irShape: [1, G * units]), record: &rec)
        let zeros = constant("\(s.name)/recurrent_bias_zeros", .filled(0, shape: [1, G * units]))
        let B = op1("Concat", [b, zeros], [Attribute(name: "axis", value: .int(1))], name: s.name)
        return (W, R, B)
    }

    func rnnAttributes(_ s: LayerSpec, cfg: JSON, kind: RNNKind, units: Int, direction: String) throws(KerasError) -> [Attribute] {
        var acts: [(String, Float?, Float?)] = []
        let act = try onnxActivation(s, cfg["activation"] ?? .string("tanh"))
        switch kind {
        case .simple: acts = [act]
        case .lstm, .gru:
            let ra = try onnxActivation(s, cfg["recurrent_activation"] ?? .string("sigmoid"))
            acts = kind == .lstm ? [ra, act, act] : [ra, act]
        }
        let dirs = direction == "bidirectional" ? 2 : 1
        let all = [(String, Float?, Float?)]((0..<dirs).flatMap { _ in acts })
        var attrs = [Attribute(name: "hidden_size", value: .int(units)), Attribute(name: "direction", value: .string(direction)),
                     Attribute(name: "activations", value: .strings(all.map(\.0)))]
        let alphas = all.compactMap(\.1), betas = all.compactMap(\.2)
        if !alphas.isEmpty { attrs.append(Attribute(name: "activation_alpha", value: .floats(alphas))) }
        if !betas.isEmpty { attrs.append(Attribute(name: "activation_beta", value: .floats(betas))) }
        if kind == .gru {
            attrs.append(Attribute(name: "linear_before_reset", value: .int((cfg["reset_after"]?.boolValue ?? true) ? 1 : 0)))
        }
        return attrs
    }

    func checkRNN(_ s: LayerSpec, _ cfg: JSON) throws(KerasError) {
        if cfg["stateful"]?.boolValue == true { throw fail(s, "stateful RNNs are not supported") }
        if cfg["time_major"]?.boolValue == true { throw fail(s, "time_major is not supported") }
        if cfg["unroll"]?.boolValue == true { /* same maths */ }
    }

    mutating func recurrent(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> [Value] {
        guard let kind = Self.rnnKind(s.className) else { throw fail(s, "not a recurrent layer") }
        try checkRNN(s, s.config)
        guard x.rank == 3, let inDim = x.shape[2] else { throw fail(s, "input must be (batch, time, features) with known features") }
        let units = try count(s, "units")
        let backwards = bool(s, "go_backwards", false)
        let seqOut = bool(s, "return_sequences", false), stateOut = bool(s, "return_state", false)
        if backwards && seqOut { throw fail(s, "go_backwards with return_sequences is not supported") }
        let ws = try weightsFor(s)
        let useBias = bool(s, "use_bias", true)
        try expectCount(s, ws, useBias ? 3 : 2)
        let cellName = ["SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"][s.className] ?? "cell"
        let (W, R, B) = try rnnWeights(s, cfg: s.config, kind: kind, units: units, inDim: inDim, ws: ws, first: 0, k3: "cell/vars",
                                       legacy: "\(s.name)/\(cellName)", rec: &rec)
        let attrs = try rnnAttributes(s, cfg: s.config, kind: kind, units: units, direction: backwards ? "reverse" : "forward")
        let xt = transpose(x, [1, 0, 2], name: s.name)
        let opName = kind == .lstm ? "LSTM" : kind == .gru ? "GRU" : "RNN"
        let outs = op(opName, [xt.name, W, R, B ?? ""], attrs, name: s.name, outputs: kind == .lstm ? 3 : 2)
        let b = x.shape[0], t = x.shape[1]
        var result: [Value] = []
        if seqOut {
            let sq = op1("Squeeze", [outs[0], ints("\(s.name)/axis1", [1])], name: s.name)
            result.append(transpose(Value(name: sq, shape: [t, b, units]), [1, 0, 2], name: s.name))
        } else {
            result.append(Value(name: op1("Squeeze", [outs[1], ints("\(s.name)/axis0", [0])], name: s.name), shape: [b, units]))
        }
        if stateOut {
            result.append(Value(name: op1("Squeeze", [outs[1], ints("\(s.name)/axis0", [0])], name: s.name), shape: [b, units]))
            if kind == .lstm {
                result.append(Value(name: op1("Squeeze", [outs[2], ints("\(s.name)/axis0", [0])], name: s.name), shape: [b, units]))
            }
        }
        return result
    }

    mutating func bidirectional(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> [Value] {
        guard let inner = s.config["layer"], let cls = inner["class_name"]?.stringValue, let cfg = inner["config"],
              let kind = Self.rnnKind(cls) else { throw fail(s, "the wrapped layer must be SimpleRNN, LSTM or GRU") }
        try checkRNN(s, cfg)
        // Keras 3 always serialises the backward layer; only a mirror of the forward one is supported.
        if let bl = s.config["backward_layer"], !bl.isNull {
            let bc = bl["config"]
            guard bl["class_name"]?.stringValue == cls, bc?["units"]?.intValue == cfg["units"]?.intValue,
                  bc?["go_backwards"]?.boolValue == true,
                  Self.activationName(bc?["activation"]) == Self.activationName(cfg["activation"]),
                  Self.activationName(bc?["recurrent_activation"]) == Self.activationName(cfg["recurrent_activation"]),
                  (bc?["reset_after"]?.boolValue ?? true) == (cfg["reset_after"]?.boolValue ?? true),
                  (bc?["return_sequences"]?.boolValue ?? false) == (cfg["return_sequences"]?.boolValue ?? false) else {
                throw fail(s, "a backward_layer that is not the mirror of the forward layer is not supported")
            }
        }
        guard x.rank == 3, let inDim = x.shape[2] else { throw fail(s, "input must be (batch, time, features) with known features") }
        guard let units = cfg["units"]?.intValue, units >= 1, units <= Self.maxConfigInt else {
            throw fail(s, "the inner layer's units must be 1 to 2^31")
        }
        if cfg["go_backwards"]?.boolValue == true || cfg["return_state"]?.boolValue == true {
            throw fail(s, "go_backwards/return_state inside Bidirectional is not supported")
        }
        let seqOut = cfg["return_sequences"]?.boolValue ?? false
        let merge = s.config["merge_mode"]?.stringValue ?? "concat"
        let ws = try weightsFor(s)
        let per = (cfg["use_bias"]?.boolValue ?? true) ? 3 : 2
        try expectCount(s, ws, 2 * per)
        let innerName = cfg["name"]?.stringValue ?? cls.lowercased()
        let cellName = ["SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"][cls] ?? "cell"
        let f = try rnnWeights(s, cfg: cfg, kind: kind, units: units, inDim: inDim, ws: ws, first: 0, k3: "forward_layer/cell/vars",
                               legacy: "\(s.name)/forward_\(innerName)/\(cellName)", rec: &rec)
        // tf_keras prefixes `backward_` to the backward layer's configured name when one is given
        // (Keras 3 always gives one, itself named `backward_<inner>`), else to the inner layer's.
        let backName = "backward_" + (s.config["backward_layer"]?["config"]?["name"]?.stringValue ?? innerName)
        let bw = try rnnWeights(s, cfg: cfg, kind: kind, units: units, inDim: inDim, ws: ws, first: per, k3: "backward_layer/cell/vars",
                                legacy: "\(s.name)/\(backName)/\(cellName)", rec: &rec)
        func cat(_ a: String, _ b: String, _ g: inout GraphBuilder) -> String {
            g.op1("Concat", [a, b], [Attribute(name: "axis", value: .int(0))], name: s.name)
        }
        let W = cat(f.0, bw.0, &self), R = cat(f.1, bw.1, &self)
        var B = ""
        if let fb = f.2, let bb = bw.2 { B = cat(fb, bb, &self) }
        let attrs = try rnnAttributes(s, cfg: cfg, kind: kind, units: units, direction: "bidirectional")
        let xt = transpose(x, [1, 0, 2], name: s.name)
        let opName = kind == .lstm ? "LSTM" : kind == .gru ? "GRU" : "RNN"
        let outs = op(opName, [xt.name, W, R, B], attrs, name: s.name, outputs: kind == .lstm ? 3 : 2)
        let b = x.shape[0], t = x.shape[1]
        // Y [t, 2, b, u] -> [b, t, 2, u]; Y_h [2, b, u] -> [b, 2, u]. The direction axis is then merged.
        let both: Value
        if seqOut {
            both = transpose(Value(name: outs[0], shape: [t, 2, b, units]), [2, 0, 1, 3], name: s.name)
        } else {
            both = transpose(Value(name: outs[1], shape: [2, b, units]), [1, 0, 2], name: s.name)
        }
        let dirAxis = both.rank - 2
        switch merge {
        case "concat":
            let shape = seqOut ? [0, 0, -1] : [0, -1]
            let y = op1("Reshape", [both.name, ints("\(s.name)/merged", shape)], name: s.name)
            return [Value(name: y, shape: seqOut ? [b, t, 2 * units] : [b, 2 * units])]
        case "sum", "ave", "mul":
            let opName = merge == "sum" ? "ReduceSum" : merge == "ave" ? "ReduceMean" : "ReduceProd"
            let y = op1(opName, [both.name, ints("\(s.name)/dir_axis", [dirAxis])], [Attribute(name: "keepdims", value: .int(0))], name: s.name)
            return [Value(name: y, shape: seqOut ? [b, t, units] : [b, units])]
        default:
            throw fail(s, "merge_mode '\(merge)' is not supported")
        }
    }
}
