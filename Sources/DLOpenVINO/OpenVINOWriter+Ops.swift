import DLGraph
import DLTensor

/// Graph ops (ONNX semantics) as OpenVINO layers.
extension IRBuilder {
    static let unary: [String: (String, String)] = [
        "Relu": ("ReLU", "opset1"), "Sigmoid": ("Sigmoid", "opset1"), "Tanh": ("Tanh", "opset1"), "Exp": ("Exp", "opset1"),
        "Log": ("Log", "opset1"), "Sqrt": ("Sqrt", "opset1"), "Abs": ("Abs", "opset1"), "Neg": ("Negative", "opset1"),
        "Floor": ("Floor", "opset1"), "Ceil": ("Ceiling", "opset1"), "Erf": ("Erf", "opset1"), "Sin": ("Sin", "opset1"),
        "Cos": ("Cos", "opset1"), "Tan": ("Tan", "opset1"), "Sign": ("Sign", "opset1"), "Softplus": ("SoftPlus", "opset4"),
        "Softsign": ("SoftSign", "opset9"), "Not": ("LogicalNot", "opset1"), "HardSwish": ("HSwish", "opset4"),
        "Mish": ("Mish", "opset4"), "Asin": ("Asin", "opset1"), "Acos": ("Acos", "opset1"), "Atan": ("Atan", "opset1"),
        "Sinh": ("Sinh", "opset1"), "Cosh": ("Cosh", "opset1"),
    ]
    static let binary: [String: String] = [
        "Add": "Add", "Sub": "Subtract", "Mul": "Multiply", "Div": "Divide", "Pow": "Power", "Max": "Maximum",
        "Min": "Minimum", "Equal": "Equal", "Less": "Less", "LessOrEqual": "LessEqual", "Greater": "Greater",
        "GreaterOrEqual": "GreaterEqual", "And": "LogicalAnd", "Or": "LogicalOr", "Xor": "LogicalXor", "Sum": "Add",
    ]
    static let reductions: Set<String> = ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2"]
    static let supported: Set<String> = Set(unary.keys).union(binary.keys).union(reductions).union([
        "Constant", "Identity", "Dropout", "Cast", "CastLike", "Mod", "Where", "Clip", "HardSigmoid", "Elu", "LeakyRelu",
        "PRelu", "Gelu", "Softmax", "LogSoftmax", "MatMul", "Gemm", "Conv", "ConvTranspose", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "LayerNormalization", "ReduceSumSquare", "Reshape",
        "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND",
        "Shape", "Expand", "Tile", "Range", "Resize", "Pad", "TopK", "Round", "DepthToSpace", "SpaceToDepth", "Einsum",
        "CumSum", "ScatterElements", "ScatterND", "LSTM", "GRU", "NonMaxSuppression",
    ])

    func input(_ n: Node, _ i: Int) throws(OpenVINOError) -> OVPort {
        guard let name = n.input(i) else { throw fail(n, "input \(i) is missing") }
        guard let p = produced[name] else { throw fail(n, "reads '\(name)', which nothing produced") }
        return p
    }

    func rank(_ n: Node, _ i: Int) -> Int? { n.input(i).flatMap { types[$0]?.rank } }

    func constFloat(_ n: Node, _ i: Int) -> Double? {
        guard let name = n.input(i), let t = constants[name], t.elementCount == 1 else { return nil }
        return t.doubles().first
    }

    /// Adds the layer for node `n`, registering its outputs under the node's output names.
    @discardableResult
    mutating func emit(_ n: Node, _ type: String, _ version: String, _ ins: [OVPort], _ data: [(String, String)] = [],
                       outputs: Int? = nil) -> [OVPort] {
        let count = outputs ?? max(n.outputs.count, 1)
        let outs = (0..<count).map { k in k < n.outputs.count ? n.outputs[k] : "" }
        let ports = add(type, version, name: n.name.isEmpty ? (n.outputs.first ?? "") : n.name, ins, data: data,
                        outputs: outs.map { $0.isEmpty ? nil : types[$0] }, names: outs.map { $0.isEmpty ? [] : [$0] })
        for (k, o) in outs.enumerated() where !o.isEmpty { produced[o] = ports[k] }
        return ports
    }

    /// An intermediate layer (no graph value of its own).
    mutating func layer(_ type: String, _ version: String, _ ins: [OVPort], _ data: [(String, String)] = [],
                        like type0: TensorType? = nil, outputs: Int = 1) -> [OVPort] {
        add(type, version, name: "", ins, data: data, outputs: Array(repeating: type0, count: outputs))
    }

    mutating func ints(_ v: [Int], scalar: Bool = false) -> OVPort {
        appendConst(Tensor(shape: scalar ? [] : [v.count], scalars: v.map { Int64($0) }), element: "i64", name: "")
    }

    mutating func scalar(_ v: Double, like name: String?) -> OVPort {
        let dtype = name.flatMap { types[$0]?.dtype } ?? .float32
        let t = Tensor(shape: [], scalars: [Float(v)]).converted(to: dtype.isFloatingPoint ? dtype : .float32)
        return appendConst(t, element: IRElement.name(t.dtype) ?? "f32", name: "")
    }

    /// Every axis of `x`: [0, rank) as a constant when the rank is known, else Range(0, rank(x)).
    mutating func allAxes(_ x: OVPort, rank: Int?) -> OVPort {
        if let rank { return ints(Array(0..<rank)) }
        let shape = layer("ShapeOf", "opset3", [x], [("output_type", "i64")])[0]
        let r = layer("Squeeze", "opset1", [layer("ShapeOf", "opset3", [shape], [("output_type", "i64")])[0]])[0]
        return layer("Range", "opset4", [ints([0], scalar: true), r, ints([1], scalar: true)], [("output_type", "i64")])[0]
    }

    static func list(_ v: [Int]) -> String { v.map(String.init).joined(separator: ",") }

    /// Makes `n`'s output value an alias of `p` (Identity, Dropout).
    mutating func alias(_ n: Node, _ p: OVPort) {
        if let o = n.outputs.first, !o.isEmpty {
            produced[o] = p
            name(p, o)
        }
    }

    mutating func translate(_ n: Node) throws(OpenVINOError) {
        if let (type, version) = Self.unary[n.opType] {
            emit(n, type, version, [try input(n, 0)])
            return
        }
        if let type = Self.binary[n.opType] {
            var acc = try input(n, 0)
            guard n.inputs.count >= 2 else { alias(n, acc); return }
            for i in 1..<n.inputs.count {
                let rhs = try input(n, i)
                acc = i == n.inputs.count - 1 ? emit(n, type, "opset1", [acc, rhs], [("auto_broadcast", "numpy")])[0]
                    : layer(type, "opset1", [acc, rhs], [("auto_broadcast", "numpy")])[0]
            }
            return
        }
        if Self.reductions.contains(n.opType) {
            let keep = try attr(n, "keepdims", 1) != 0
            let axes: OVPort
            if n.input(1) != nil {
                axes = try input(n, 1)
            } else if let v = try ints(n, "axes") {
                axes = ints(v)
            } else {
                axes = allAxes(try input(n, 0), rank: rank(n, 0))
            }
            emit(n, n.opType, "opset1", [try input(n, 0), axes], [("keep_dims", keep ? "true" : "false")])
            return
        }
        switch n.opType {
        case "Constant":
            guard let o = n.outputs.first, let t = constants[o] else { throw fail(n, "has no value") }
            produced[o] = try constant(t, name: o)
        case "Identity", "Dropout":
            alias(n, try input(n, 0))
        case "Cast":
            let to = try attr(n, "to", 1)
            guard let dt = DType.allCases.first(where: { Int($0.onnxCode) == to }), let et = IRElement.name(dt) else {
                throw fail(n, "cast to type \(to) has no OpenVINO element type")
            }
            emit(n, "Convert", "opset1", [try input(n, 0)], [("destination_type", et)])
        case "CastLike":
            emit(n, "ConvertLike", "opset1", [try input(n, 0), try input(n, 1)])
        case "Mod":
            emit(n, try attr(n, "fmod", 0) == 1 ? "Mod" : "FloorMod", "opset1", [try input(n, 0), try input(n, 1)], [("auto_broadcast", "numpy")])
        case "Where":
            emit(n, "Select", "opset1", [try input(n, 0), try input(n, 1), try input(n, 2)], [("auto_broadcast", "numpy")])
        case "Clip":
            var x = try input(n, 0)
            let lo = n.input(1) == nil ? nil : constFloat(n, 1), hi = n.input(2) == nil ? nil : constFloat(n, 2)
            if (n.input(1) == nil || lo != nil) && (n.input(2) == nil || hi != nil) {
                let big = 3.4028234663852886e38
                emit(n, "Clamp", "opset1", [x], [("min", String(lo ?? -big)), ("max", String(hi ?? big))])
            } else {
                if n.input(1) != nil { x = layer("Maximum", "opset1", [x, try input(n, 1)], [("auto_broadcast", "numpy")])[0] }
                if n.input(2) != nil {
                    emit(n, "Minimum", "opset1", [x, try input(n, 2)], [("auto_broadcast", "numpy")])
                } else {
                    alias(n, x)
                }
            }
        case "HardSigmoid":
            let alpha = try float(n, "alpha", 0.2), beta = try float(n, "beta", 0.5)
            let x = try input(n, 0)
            emit(n, "HardSigmoid", "opset1", [x, scalar(Double(alpha), like: n.inputs[0]), scalar(Double(beta), like: n.inputs[0])])
        case "Elu":
            emit(n, "Elu", "opset1", [try input(n, 0)], [("alpha", String(try float(n, "alpha", 1)))])
        case "LeakyRelu":
            let x = try input(n, 0)
            emit(n, "PRelu", "opset1", [x, scalar(Double(try float(n, "alpha", 0.01)), like: n.inputs[0])])
        case "PRelu":
            emit(n, "PRelu", "opset1", [try input(n, 0), try input(n, 1)])
        case "Gelu":
            let mode = try string(n, "approximate", "none") == "tanh" ? "TANH" : "ERF"
            emit(n, "Gelu", "opset7", [try input(n, 0)], [("approximation_mode", mode)])
        case "Softmax", "LogSoftmax":
            emit(n, n.opType == "Softmax" ? "SoftMax" : "LogSoftmax", n.opType == "Softmax" ? "opset8" : "opset5",
                 [try input(n, 0)], [("axis", String(try attr(n, "axis", -1)))])
        case "MatMul":
            emit(n, "MatMul", "opset1", [try input(n, 0), try input(n, 1)], [("transpose_a", "false"), ("transpose_b", "false")])
        case "Gemm":
            try gemm(n)
        case "Conv", "ConvTranspose":
            try convolution(n)
        case "MaxPool", "AveragePool":
            try pool(n)
        case "GlobalAveragePool", "GlobalMaxPool":
            guard let r = rank(n, 0) else { throw fail(n, "needs the input's rank") }
            emit(n, n.opType == "GlobalAveragePool" ? "ReduceMean" : "ReduceMax", "opset1", [try input(n, 0), ints(Array(2..<r))],
                 [("keep_dims", "true")])
        case "BatchNormalization":
            guard n.outputs.filter({ !$0.isEmpty }).count == 1 else { throw fail(n, "training-mode outputs are not translated") }
            emit(n, "BatchNormInference", "opset5", try (0..<5).map { (i) throws(OpenVINOError) in try input(n, i) },
                 [("epsilon", String(try float(n, "epsilon", 1e-5)))])
        case "LayerNormalization":
            guard n.outputs.filter({ !$0.isEmpty }).count == 1 else { throw fail(n, "mean and inverse std outputs are not translated") }
            let axis = try attr(n, "axis", -1)
            // MVN counts negative axes from the back, so [axis, -1] needs no rank.
            let axes: [Int]
            if axis < 0 {
                axes = Array(axis..<0)
            } else {
                guard let r = rank(n, 0) else { throw fail(n, "a non-negative axis needs the input's rank") }
                axes = Array(axis..<r)
            }
            let eps = try float(n, "epsilon", 1e-5)
            var y = layer("MVN", "opset6", [try input(n, 0), ints(axes)],
                          [("eps", String(eps)), ("normalize_variance", "true"), ("eps_mode", "INSIDE_SQRT")], like: types[n.inputs[0]])[0]
            if n.input(2) != nil {
                y = layer("Multiply", "opset1", [y, try input(n, 1)], [("auto_broadcast", "numpy")])[0]
                emit(n, "Add", "opset1", [y, try input(n, 2)], [("auto_broadcast", "numpy")])
            } else {
                emit(n, "Multiply", "opset1", [y, try input(n, 1)], [("auto_broadcast", "numpy")])
            }
        case "ReduceSumSquare":
            let x = try input(n, 0)
            let sq = layer("Multiply", "opset1", [x, x], [("auto_broadcast", "numpy")])[0]
            let axes: OVPort
            if n.input(1) != nil { axes = try input(n, 1) } else if let v = try ints(n, "axes") { axes = ints(v) } else {
                axes = allAxes(x, rank: rank(n, 0))
            }
            emit(n, "ReduceSum", "opset1", [sq, axes], [("keep_dims", try attr(n, "keepdims", 1) != 0 ? "true" : "false")])
        case "Reshape":
            emit(n, "Reshape", "opset1", [try input(n, 0), try input(n, 1)], [("special_zero", try attr(n, "allowzero", 0) == 0 ? "true" : "false")])
        case "Flatten":
            let dims = n.input(0).flatMap { types[$0]?.dims }
            var axis = try attr(n, "axis", 1)
            if axis < 0 {
                guard let dims else { throw fail(n, "a negative axis needs the input's rank") }
                axis += dims.count
            }
            let x = try input(n, 0)
            let shape: OVPort
            if axis == 0 {
                shape = ints([1, -1])
            } else if axis == 1 {
                shape = ints([0, -1])
            } else if let dims, axis <= dims.count, let lead = Array(dims[0..<axis]).concrete,
                      case let (rows, false) = lead.reduce((1, false), { acc, d in
                          let r = acc.0.multipliedReportingOverflow(by: d)
                          return (r.partialValue, acc.1 || r.overflow)
                      }) {
                shape = ints([rows, -1])
            } else {
                // [prod(shape[:axis]), -1] computed by layers.
                let all = layer("ShapeOf", "opset3", [x], [("output_type", "i64")])[0]
                let lead = layer("Slice", "opset8", [all, ints([0]), ints([axis]), ints([1])])[0]
                let prod = layer("ReduceProd", "opset1", [lead, ints([0])], [("keep_dims", "true")])[0]
                shape = layer("Concat", "opset1", [prod, ints([-1])], [("axis", "0")])[0]
            }
            emit(n, "Reshape", "opset1", [x, shape], [("special_zero", "true")])
        case "Squeeze", "Unsqueeze":
            var ins = [try input(n, 0)]
            if n.input(1) != nil { ins.append(try input(n, 1)) } else if let v = try ints(n, "axes") { ins.append(ints(v)) }
            guard n.opType == "Squeeze" || ins.count == 2 else { throw fail(n, "has no axes") }
            emit(n, n.opType, "opset1", ins)
        case "Transpose":
            emit(n, "Transpose", "opset1", [try input(n, 0), ints(try ints(n, "perm") ?? [])])
        case "Concat":
            emit(n, "Concat", "opset1", try n.inputs.indices.map { (i) throws(OpenVINOError) in try input(n, i) },
                 [("axis", String(try attr(n, "axis", 0)))])
        case "Split":
            let axis = ints([try attr(n, "axis", 0)], scalar: true)
            if n.input(1) != nil {
                emit(n, "VariadicSplit", "opset1", [try input(n, 0), axis, try input(n, 1)])
            } else {
                emit(n, "Split", "opset1", [try input(n, 0), axis], [("num_splits", String(n.outputs.count))])
            }
        case "Slice":
            var ins = [try input(n, 0), try input(n, 1), try input(n, 2)]
            if n.input(4) != nil {
                ins.append(try input(n, 4))
            } else {
                // Steps of 1, as many as starts.
                let one = ints([1], scalar: true)
                let count = layer("ShapeOf", "opset3", [try input(n, 1)], [("output_type", "i64")])[0]
                ins.append(layer("Broadcast", "opset3", [one, count], [("mode", "numpy")])[0])
            }
            if n.input(3) != nil { ins.append(try input(n, 3)) }
            emit(n, "Slice", "opset8", ins)
        case "Gather":
            emit(n, "Gather", "opset8", [try input(n, 0), try input(n, 1), ints([try attr(n, "axis", 0)], scalar: true)], [("batch_dims", "0")])
        case "GatherElements":
            emit(n, "GatherElements", "opset6", [try input(n, 0), try input(n, 1)], [("axis", String(try attr(n, "axis", 0)))])
        case "GatherND":
            emit(n, "GatherND", "opset8", [try input(n, 0), try input(n, 1)], [("batch_dims", String(try attr(n, "batch_dims", 0)))])
        case "Shape":
            guard n.attribute("start") != nil || n.attribute("end") != nil else {
                emit(n, "ShapeOf", "opset3", [try input(n, 0)], [("output_type", "i64")])
                return
            }
            let all = layer("ShapeOf", "opset3", [try input(n, 0)], [("output_type", "i64")])[0]
            let end = try attr(n, "end", Int(Int64.max))
            emit(n, "Slice", "opset8", [all, ints([try attr(n, "start", 0)]), ints([end]), ints([1])])
        case "Expand":
            emit(n, "Broadcast", "opset3", [try input(n, 0), try input(n, 1)], [("mode", "bidirectional")])
        case "Tile":
            emit(n, "Tile", "opset1", [try input(n, 0), try input(n, 1)])
        case "Range":
            let t = n.outputs.first.flatMap { types[$0]?.dtype } ?? .int64
            emit(n, "Range", "opset4", [try input(n, 0), try input(n, 1), try input(n, 2)], [("output_type", IRElement.name(t) ?? "i64")])
        case "Resize":
            try resize(n)
        case "Pad":
            let mode = try string(n, "mode", "constant")
            guard ["constant", "reflect", "edge"].contains(mode) else { throw fail(n, "mode '\(mode)' has no OpenVINO equivalent") }
            guard n.input(3) == nil else { throw fail(n, "the axes input is not translated") }
            let halves = layer("Split", "opset1", [try input(n, 1), ints([0], scalar: true)], [("num_splits", "2")], outputs: 2)
            var ins = [try input(n, 0), halves[0], halves[1]]
            if mode == "constant" { ins.append(n.input(2) != nil ? try input(n, 2) : scalar(0, like: n.inputs[0])) }
            emit(n, "Pad", "opset12", ins, [("pad_mode", mode)])
        case "TopK":
            let k = layer("Squeeze", "opset1", [try input(n, 1)])[0]
            emit(n, "TopK", "opset11", [try input(n, 0), k],
                 [("axis", String(try attr(n, "axis", -1))), ("mode", try attr(n, "largest", 1) == 1 ? "max" : "min"),
                  ("sort", try attr(n, "sorted", 1) == 1 ? "value" : "none"), ("index_element_type", "i64"), ("stable", "true")], outputs: 2)
        case "Round":
            emit(n, "Round", "opset5", [try input(n, 0)], [("mode", "half_to_even")])
        case "DepthToSpace":
            emit(n, "DepthToSpace", "opset1", [try input(n, 0)],
                 [("block_size", String(try attr(n, "blocksize", 1))), ("mode", try string(n, "mode", "DCR") == "CRD" ? "depth_first" : "blocks_first")])
        case "SpaceToDepth":
            emit(n, "SpaceToDepth", "opset1", [try input(n, 0)], [("block_size", String(try attr(n, "blocksize", 1))), ("mode", "blocks_first")])
        case "Einsum":
            emit(n, "Einsum", "opset7", try n.inputs.indices.map { (i) throws(OpenVINOError) in try input(n, i) },
                 [("equation", try string(n, "equation", ""))])
        case "CumSum":
            emit(n, "CumSum", "opset3", [try input(n, 0), try input(n, 1)],
                 [("exclusive", try attr(n, "exclusive", 0) == 1 ? "true" : "false"), ("reverse", try attr(n, "reverse", 0) == 1 ? "true" : "false")])
        case "ScatterElements":
            let r = try string(n, "reduction", "none")
            let map = ["none": "none", "add": "sum", "mul": "prod", "min": "min", "max": "max"]
            guard let red = map[r] else { throw fail(n, "reduction '\(r)' is not translated") }
            emit(n, "ScatterElementsUpdate", "opset12", [try input(n, 0), try input(n, 1), try input(n, 2), ints([try attr(n, "axis", 0)], scalar: true)],
                 [("reduction", red), ("use_init_val", "true")])
        case "ScatterND":
            guard try string(n, "reduction", "none") == "none" else { throw fail(n, "reductions are not translated") }
            emit(n, "ScatterNDUpdate", "opset3", [try input(n, 0), try input(n, 1), try input(n, 2)])
        case "LSTM", "GRU":
            try recurrent(n)
        case "NonMaxSuppression":
            // Absent inputs: no boxes (0), IoU 0, and no score threshold (the lowest float).
            var ins = [try input(n, 0), try input(n, 1)]
            ins.append(n.input(2) != nil ? try input(n, 2) : ints([0], scalar: true))
            ins.append(n.input(3) != nil ? try input(n, 3) : scalar(0, like: nil))
            ins.append(n.input(4) != nil ? try input(n, 4) : scalar(-3.4028234663852886e38, like: nil))
            ins.append(scalar(0, like: nil))
            emit(n, "NonMaxSuppression", "opset9", ins,
                 [("box_encoding", try attr(n, "center_point_box", 0) == 1 ? "center" : "corner"),
                  ("sort_result_descending", "false"), ("output_type", "i64")], outputs: 3)
        default:
            throw fail(n, "no translation")
        }
    }

    // MARK: Attribute access with the node's errors as OpenVINOError

    func attr(_ n: Node, _ key: String, _ d: Int) throws(OpenVINOError) -> Int {
        do { return try n.int(key, default: d) } catch { throw fail(n, "\(error)") }
    }

    func float(_ n: Node, _ key: String, _ d: Float) throws(OpenVINOError) -> Float {
        do { return try n.float(key, default: d) } catch { throw fail(n, "\(error)") }
    }

    func string(_ n: Node, _ key: String, _ d: String) throws(OpenVINOError) -> String {
        do { return try n.string(key, default: d) } catch { throw fail(n, "\(error)") }
    }

    func ints(_ n: Node, _ key: String) throws(OpenVINOError) -> [Int]? {
        do { return try n.ints(key) } catch { throw fail(n, "\(error)") }
    }
}
