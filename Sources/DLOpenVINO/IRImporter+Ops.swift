import DLGraph
import DLTensor

/// Attribute helpers for the IR (ONNX) nodes the translations emit.
private func a(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(v)) }
private func a(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v)) }
private func a(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }
private func a(_ name: String, _ v: String) -> Attribute { Attribute(name: name, value: .string(v)) }
private func a(_ name: String, _ v: [String]) -> Attribute { Attribute(name: name, value: .strings(v)) }

extension IRImporter {
    static let unary: [String: String] = [
        "ReLU": "Relu", "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Exp": "Exp", "Log": "Log", "Sqrt": "Sqrt",
        "Abs": "Abs", "Negative": "Neg", "Floor": "Floor", "Ceiling": "Ceil", "Erf": "Erf", "Sin": "Sin", "Cos": "Cos",
        "Tan": "Tan", "Asin": "Asin", "Acos": "Acos", "Atan": "Atan", "Sinh": "Sinh", "Cosh": "Cosh", "Asinh": "Asinh",
        "Acosh": "Acosh", "Atanh": "Atanh", "Sign": "Sign", "SoftPlus": "Softplus", "SoftSign": "Softsign",
        "Round": "Round",
        "LogicalNot": "Not", "HSwish": "HardSwish", "Mish": "Mish",
    ]
    static let binary: [String: String] = [
        "Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Divide": "Div", "Power": "Pow", "Maximum": "Max",
        "Minimum": "Min", "Equal": "Equal", "Less": "Less", "LessEqual": "LessOrEqual", "Greater": "Greater",
        "GreaterEqual": "GreaterOrEqual", "LogicalAnd": "And", "LogicalOr": "Or", "LogicalXor": "Xor",
    ]
    static let reductions: [String: String] = [
        "ReduceMean": "ReduceMean", "ReduceMax": "ReduceMax", "ReduceMin": "ReduceMin", "ReduceSum": "ReduceSum",
        "ReduceProd": "ReduceProd", "ReduceL1": "ReduceL1", "ReduceL2": "ReduceL2",
    ]
    static let supported: Set<String> = Set(unary.keys).union(binary.keys).union(reductions.keys).union([
        "Parameter", "Result", "Const", "Convert", "ConvertLike", "NotEqual", "SquaredDifference", "Mod", "FloorMod",
        "Clamp", "Elu", "Gelu", "Swish", "HSigmoid", "HardSigmoid", "PRelu", "SoftMax", "LogSoftmax", "MatMul",
        "Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
        "MaxPool", "AvgPool", "MVN", "BatchNormInference", "NormalizeL2", "GroupNormalization",
        "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "VariadicSplit", "StridedSlice", "Slice",
        "Gather", "GatherElements", "GatherND", "ShapeOf", "Broadcast", "Tile", "Range", "Interpolate", "Pad",
        "Select", "FakeQuantize", "TopK", "LSTMSequence", "GRUSequence", "DepthToSpace", "SpaceToDepth", "Einsum",
        "ScatterElementsUpdate", "ScatterNDUpdate", "CumSum", "NonMaxSuppression", "ScaledDotProductAttention",
    ])

    /// Translates one layer; `ins` and `outs` are the value names of its ports in order.
    mutating func translate(_ l: IRLayer, _ ins: [String], _ outs: [String]) throws(OpenVINOError) {
        func need(_ n: Int) throws(OpenVINOError) {
            guard ins.count >= n else { throw fail(l, "has \(ins.count) inputs, needs \(n)") }
            guard !outs.isEmpty || l.type == "Result" else { throw fail(l, "has no output port") }
        }
        let out = outs.first ?? ""
        if let op = Self.unary[l.type] {
            try need(1)
            if l.type == "Round", attrString(l, "mode", default: "half_to_even").lowercased() != "half_to_even" {
                // half_away_from_zero: sign(x) * floor(|x| + 0.5)
                let t = l.inputs.first.flatMap(dtype) ?? .float32
                let half = constantValue(Tensor(shape: [], scalars: [Float(0.5)]).converted(to: t), base: out + "_half")
                let magnitude = value("Floor", [value("Add", [value("Abs", [ins[0]], base: out + "_abs"), half], base: out + "_shifted")], base: out + "_floor")
                emit("Mul", [value("Sign", [ins[0]], base: out + "_sign"), magnitude], [out], name: l.name)
                return
            }
            emit(op, [ins[0]], [out], name: l.name)
            return
        }
        if let op = Self.binary[l.type] {
            try need(2)
            try broadcastIsNumpy(l)
            emit(op, [ins[0], ins[1]], [out], name: l.name)
            return
        }
        if let op = Self.reductions[l.type] {
            try need(2)
            let keep = try attrBool(l, "keep_dims", default: false)
            emit(op, [ins[0], asInt64(l, 1, ins[1])], [out], [a("keepdims", keep ? 1 : 0)], name: l.name)
            return
        }
        switch l.type {
        case "Parameter":
            guard let et = l.data["element_type"], let dt = IRElement.dtype(et) else {
                throw fail(l, "element_type '\(l.data["element_type"] ?? "missing")' is not one DLKit reads")
            }
            let shapeText = l.data["shape"] ?? ""
            var dims: [Dim]?
            if shapeText.trimmingCharacters(in: .whitespaces) != "..." {
                guard let d = IRShape.dims(shapeText) else { throw fail(l, "shape '\(shapeText)' is not a shape") }
                dims = d.map { $0.map(Dim.fixed) ?? .unknown }
            }
            inputs.append(ValueInfo(name: out, type: TensorType(dtype: dt, dims: dims)))
        case "Result":
            try need(1)
            let port = l.inputs[0]
            var name = ins[0]
            let taken = outputs.contains { $0.name == name } || inputs.contains { $0.name == name }
                || initializers.contains { $0.0 == name }
            if taken {
                name = temp(l.name.isEmpty ? "output" : l.name)
                emit("Identity", [ins[0]], [name])
            }
            let type = dtype(port).map { TensorType(dtype: $0, dims: port.dims.map { $0.map(Dim.fixed) ?? .unknown }) }
            outputs.append(ValueInfo(name: name, type: type))
        case "Const":
            guard let t = constants[l.id] else { throw fail(l, "was not read") }
            initializers.append((out, t))
        case "Convert":
            try need(1)
            let to = attrString(l, "destination_type", default: "")
            guard let dt = IRElement.dtype(to) else { throw fail(l, "destination_type '\(to)' is not one DLKit reads") }
            emit("Cast", [ins[0]], [out], [a("to", Int(dt.onnxCode))], name: l.name)
        case "ConvertLike":
            try need(2)
            emit("CastLike", [ins[0], ins[1]], [out], name: l.name)
        case "NotEqual":
            try need(2)
            try broadcastIsNumpy(l)
            emit("Not", [value("Equal", [ins[0], ins[1]], base: out + "_eq")], [out], name: l.name)
        case "SquaredDifference":
            try need(2)
            let d = value("Sub", [ins[0], ins[1]], base: out + "_diff")
            emit("Mul", [d, d], [out], name: l.name)
        case "Mod":
            try need(2)
            emit("Mod", [ins[0], ins[1]], [out], [a("fmod", 1)], name: l.name)
        case "FloorMod":
            try need(2)
            if let t = l.inputs.first.flatMap(dtype), t.isInteger {
                emit("Mod", [ins[0], ins[1]], [out], [a("fmod", 0)], name: l.name)
            } else {
                // a - floor(a / b) * b
                let q = value("Floor", [value("Div", [ins[0], ins[1]], base: out + "_div")], base: out + "_floor")
                emit("Sub", [ins[0], value("Mul", [q, ins[1]], base: out + "_mul")], [out], name: l.name)
            }
        case "Clamp":
            try need(1)
            let t = l.inputs.first.flatMap(dtype) ?? .float32
            let lo = constantValue(Tensor(shape: [], scalars: [try attrFloat(l, "min")]).converted(to: t), base: out + "_min")
            let hi = constantValue(Tensor(shape: [], scalars: [try attrFloat(l, "max")]).converted(to: t), base: out + "_max")
            emit("Clip", [ins[0], lo, hi], [out], name: l.name)
        case "Elu":
            try need(1)
            emit("Elu", [ins[0]], [out], [a("alpha", try attrFloat(l, "alpha"))], name: l.name)
        case "Gelu":
            try need(1)
            let mode = attrString(l, "approximation_mode", default: "ERF").lowercased()
            guard mode == "erf" || mode == "tanh" else { throw fail(l, "approximation_mode '\(mode)' is not erf or tanh") }
            emit("Gelu", [ins[0]], [out], [a("approximate", mode == "tanh" ? "tanh" : "none")], name: l.name)
        case "Swish":
            try need(1)
            let arg = ins.count > 1 ? value("Mul", [ins[0], ins[1]], base: out + "_beta") : ins[0]
            emit("Mul", [ins[0], value("Sigmoid", [arg], base: out + "_sigmoid")], [out], name: l.name)
        case "HardSigmoid":
            // max(0, min(1, alpha * x + beta)), alpha and beta being inputs
            try need(3)
            let t = l.inputs.first.flatMap(dtype) ?? .float32
            let zero = constantValue(Tensor(shape: [], scalars: [Float(0)]).converted(to: t), base: out + "_zero")
            let one = constantValue(Tensor(shape: [], scalars: [Float(1)]).converted(to: t), base: out + "_one")
            let linear = value("Add", [value("Mul", [ins[0], ins[1]], base: out + "_scaled"), ins[2]], base: out + "_linear")
            emit("Max", [value("Min", [linear, one], base: out + "_upper"), zero], [out], name: l.name)
        case "HSigmoid":
            try need(1)
            emit("HardSigmoid", [ins[0]], [out], [a("alpha", Float(1) / 6), a("beta", Float(0.5))], name: l.name)
        case "PRelu":
            try need(2)
            // OpenVINO applies a 1-D slope along axis 1; ONNX broadcasts from the right.
            var slope = ins[1]
            if let r = rank(l, input: 0), r > 2, rank(l, input: 1) == 1, let c = dims(l, input: 1)?.first ?? nil, c != 1 {
                slope = value("Reshape", [slope, ints([c] + Array(repeating: 1, count: r - 2), base: out + "_shape")], base: out + "_slope")
            }
            emit("PRelu", [ins[0], slope], [out], name: l.name)
        case "SoftMax", "LogSoftmax":
            try need(1)
            emit(l.type == "SoftMax" ? "Softmax" : "LogSoftmax", [ins[0]], [out], [a("axis", try attrInt(l, "axis", default: 1))], name: l.name)
        case "MatMul":
            try need(2)
            var x = [ins[0], ins[1]]
            for (i, key) in ["transpose_a", "transpose_b"].enumerated() where try attrBool(l, key, default: false) {
                guard let r = rank(l, input: i) else { throw fail(l, "\(key) needs the rank of input \(i)") }
                if r >= 2 {
                    var perm = Array(0..<r)
                    perm.swapAt(r - 1, r - 2)
                    x[i] = value("Transpose", [x[i]], [a("perm", perm)], base: out + "_t\(i)")
                }
            }
            emit("MatMul", x, [out], name: l.name)
        case "Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData":
            try need(2)
            var window = try windowAttributes(l)
            let transposed = l.type.hasSuffix("BackpropData")
            if transposed {
                let outputPadding = try attrInts(l, "output_padding", default: [])
                if outputPadding.contains(where: { $0 != 0 }) { window.outputPadding = outputPadding }
                if ins.count > 2 {
                    window.pads = nil
                    window.outputShape = try requireInts(l, 2, "output_shape")
                }
            }
            var w = ins[1]
            if l.type.hasPrefix("Group") {
                let (reshaped, groups) = try groupedWeights(l, w, out: out)
                w = reshaped
                window.group = groups
            }
            emit(transposed ? "ConvTranspose" : "Conv", [ins[0], w], [out], window.attributes, name: l.name)
        case "MaxPool", "AvgPool":
            try need(1)
            var window = try windowAttributes(l)
            window.kernelShape = try attrInts(l, "kernel")
            let rounding = attrString(l, "rounding_type", default: "floor").lowercased()
            guard ["floor", "ceil", "ceil_torch"].contains(rounding) else { throw fail(l, "rounding_type '\(rounding)' is not floor or ceil") }
            window.ceilMode = rounding != "floor"
            if l.type == "AvgPool" {
                window.dilations = nil
                window.countIncludePad = !(try attrBool(l, "exclude-pad", default: false))
                emit("AveragePool", [ins[0]], [out], window.attributes, name: l.name)
            } else {
                if outs.count > 1, l.outputs.count > 1, isUsed(layer: l.id, port: l.outputs[1].id) {
                    throw fail(l, "its indices output is used; OpenVINO's index layout has no ONNX MaxPool equivalent")
                }
                emit("MaxPool", [ins[0]], [out], window.attributes, name: l.name)
            }
        case "MVN":
            try need(1)
            try meanVarianceNormalization(l, ins, out)
        case "BatchNormInference":
            try need(5)
            let eps = try attrFloat(l, "epsilon")
            // opset1 takes gamma, beta, data, mean, variance; opset5 data first.
            let order = l.version == "opset1" ? [2, 0, 1, 3, 4] : [0, 1, 2, 3, 4]
            emit("BatchNormalization", order.map { ins[$0] }, [out], [a("epsilon", eps)], name: l.name)
        case "NormalizeL2":
            try need(2)
            let eps = value("Cast", [float(try attrFloat(l, "eps"), base: out + "_eps")], [a("to", Int((l.inputs.first.flatMap(dtype) ?? .float32).onnxCode))], base: out + "_eps_t")
            let sum = value("ReduceSumSquare", [ins[0], asInt64(l, 1, ins[1])], [a("keepdims", 1)], base: out + "_sumsq")
            let combined = attrString(l, "eps_mode", default: "add").lowercased() == "max"
                ? value("Max", [sum, eps], base: out + "_max") : value("Add", [sum, eps], base: out + "_add")
            emit("Div", [ins[0], value("Sqrt", [combined], base: out + "_norm")], [out], name: l.name)
        case "GroupNormalization":
            try need(3)
            emit("GroupNormalization", [ins[0], ins[1], ins[2]], [out],
                 [a("num_groups", try attrInt(l, "num_groups")), a("epsilon", try attrFloat(l, "epsilon"))], name: l.name)
        case "Reshape":
            try need(2)
            let specialZero = try attrBool(l, "special_zero", default: false)
            let literalZero = !specialZero && (constantInts(l, 1)?.contains(0) ?? true)
            emit("Reshape", [ins[0], asInt64(l, 1, ins[1])], [out], literalZero ? [a("allowzero", 1)] : [], name: l.name)
        case "Squeeze", "Unsqueeze":
            try need(1)
            var axes: [String] = []
            if ins.count > 1 {
                if let v = constantInts(l, 1) {
                    axes = [ints(v, base: out + "_axes")]
                } else {
                    axes = [value("Reshape", [asInt64(l, 1, ins[1]), ints([-1], base: out + "_flat")], base: out + "_axes")]
                }
            } else if l.type == "Unsqueeze" {
                throw fail(l, "has no axes input")
            }
            emit(l.type, [ins[0]] + axes, [out], name: l.name)
        case "Transpose":
            try need(2)
            var perm = try requireInts(l, 1, "the order")
            if perm.isEmpty {
                guard let r = rank(l, input: 0) else { throw fail(l, "an empty order needs the input's rank") }
                perm = Array((0..<r).reversed())
            }
            emit("Transpose", [ins[0]], [out], [a("perm", perm)], name: l.name)
        case "Concat":
            emit("Concat", ins, [out], [a("axis", try attrInt(l, "axis"))], name: l.name)
        case "Split":
            try need(2)
            let axis = try requireInts(l, 1, "the axis")
            guard axis.count == 1 else { throw fail(l, "the axis must be one integer") }
            emit("Split", [ins[0]], outs, [a("axis", axis[0]), a("num_outputs", try attrInt(l, "num_splits"))], name: l.name)
        case "VariadicSplit":
            try need(3)
            let axis = try requireInts(l, 1, "the axis")
            guard axis.count == 1 else { throw fail(l, "the axis must be one integer") }
            guard var lengths = constantInts(l, 2) else {
                // Lengths computed in the graph (torch.chunk): a -1 among them becomes what the
                // others leave of the axis, by nodes: where(len == -1, size - (sum(len) + 1), len).
                let lens = asInt64(l, 2, ins[2])
                let size = value("Gather", [value("Shape", [ins[0]], base: out + "_shape"), ints([axis[0]], base: out + "_axis")],
                                 [a("axis", 0)], base: out + "_size")
                let sum = value("ReduceSum", [lens, ints([0], base: out + "_axis0")], [a("keepdims", 1)], base: out + "_sum")
                let rest = value("Sub", [size, value("Add", [sum, ints([1], base: out + "_one")], base: out + "_known")], base: out + "_rest")
                let minusOne = value("Equal", [lens, ints([-1], base: out + "_minus1")], base: out + "_isfill")
                let resolved = value("Where", [minusOne, rest, lens], base: out + "_lengths")
                emit("Split", [ins[0], resolved], outs, [a("axis", axis[0])], name: l.name)
                return
            }
            if let unknown = lengths.firstIndex(of: -1) {
                guard let r = rank(l, input: 0), let ax = Axes.normalise(axis[0], rank: r), let total = dims(l, input: 0)?[ax] else {
                    throw fail(l, "a split length of -1 needs the size of the split axis")
                }
                // Wrapping arithmetic: lying lengths give a split the graph check refuses, not a trap.
                lengths[unknown] = total &- lengths.filter { $0 != -1 }.reduce(0, &+)
            }
            emit("Split", [ins[0], ints(lengths, base: out + "_split")], outs, [a("axis", axis[0])], name: l.name)
        case "StridedSlice":
            try need(3)
            try stridedSlice(l, ins, out)
        case "Slice":
            try need(4)
            var x = [ins[0], asInt64(l, 1, ins[1]), asInt64(l, 2, ins[2])]
            x.append(ins.count > 4 ? asInt64(l, 4, ins[4]) : "")
            x.append(asInt64(l, 3, ins[3]))
            emit("Slice", x, [out], name: l.name)
        case "Gather":
            try need(3)
            guard try attrInt(l, "batch_dims", default: 0) == 0 else { throw fail(l, "batch_dims other than 0 is not translated") }
            let axis = try requireInts(l, 2, "the axis")
            guard axis.count == 1 else { throw fail(l, "the axis must be one integer") }
            emit("Gather", [ins[0], ins[1]], [out], [a("axis", axis[0])], name: l.name)
        case "GatherElements":
            try need(2)
            emit("GatherElements", [ins[0], ins[1]], [out], [a("axis", try attrInt(l, "axis"))], name: l.name)
        case "GatherND":
            try need(2)
            emit("GatherND", [ins[0], asInt64(l, 1, ins[1])], [out], [a("batch_dims", try attrInt(l, "batch_dims", default: 0))], name: l.name)
        case "ShapeOf":
            try need(1)
            if attrString(l, "output_type", default: "i64") == "i32" {
                emit("Cast", [value("Shape", [ins[0]], base: out + "_i64")], [out], [a("to", Int(DType.int32.onnxCode))], name: l.name)
            } else {
                emit("Shape", [ins[0]], [out], name: l.name)
            }
        case "Broadcast":
            try need(2)
            let mode = attrString(l, "mode", default: "numpy").lowercased()
            guard mode == "numpy" || mode == "bidirectional" else { throw fail(l, "mode '\(mode)' is not translated (numpy and bidirectional are)") }
            emit("Expand", [ins[0], asInt64(l, 1, ins[1])], [out], name: l.name)
        case "Tile":
            try need(2)
            emit("Tile", [ins[0], asInt64(l, 1, ins[1])], [out], name: l.name)
        case "Range":
            try need(3)
            let to = IRElement.dtype(attrString(l, "output_type", default: "")) ?? l.outputs.first.flatMap(dtype) ?? .float32
            let x = (0..<3).map { value("Cast", [ins[$0]], [a("to", Int(to.onnxCode))], base: out + "_r\($0)") }
            emit("Range", x, [out], name: l.name)
        case "Interpolate":
            try need(2)
            try interpolate(l, ins, out)
        case "Pad":
            try need(3)
            let mode = attrString(l, "pad_mode", default: "constant").lowercased()
            guard ["constant", "edge", "reflect"].contains(mode) else { throw fail(l, "pad_mode '\(mode)' has no ONNX equivalent") }
            let pads = value("Concat", [asInt64(l, 1, ins[1]), asInt64(l, 2, ins[2])], [a("axis", 0)], base: out + "_pads")
            emit("Pad", [ins[0], pads] + (ins.count > 3 && mode == "constant" ? [ins[3]] : []), [out], [a("mode", mode)], name: l.name)
        case "Select":
            try need(3)
            try broadcastIsNumpy(l)
            emit("Where", [ins[0], ins[1], ins[2]], [out], name: l.name)
        case "FakeQuantize":
            try need(5)
            try fakeQuantize(l, ins, out)
        case "TopK":
            try need(2)
            try topK(l, ins, outs)
        case "ScaledDotProductAttention":
            try need(3)
            try scaledDotProductAttention(l, ins, out)
        case "NonMaxSuppression":
            try need(2)
            try nonMaxSuppression(l, ins, outs)
        case "LSTMSequence", "GRUSequence":
            try recurrent(l, ins, outs)
        case "DepthToSpace":
            try need(1)
            let mode = attrString(l, "mode", default: "blocks_first")
            emit("DepthToSpace", [ins[0]], [out], [a("blocksize", try attrInt(l, "block_size")), a("mode", mode == "depth_first" ? "CRD" : "DCR")], name: l.name)
        case "SpaceToDepth":
            try need(1)
            guard attrString(l, "mode", default: "blocks_first") == "blocks_first" else { throw fail(l, "mode depth_first has no ONNX equivalent") }
            emit("SpaceToDepth", [ins[0]], [out], [a("blocksize", try attrInt(l, "block_size"))], name: l.name)
        case "Einsum":
            emit("Einsum", ins, [out], [a("equation", attrString(l, "equation", default: ""))], name: l.name)
        case "ScatterElementsUpdate":
            try need(4)
            let axis = try requireInts(l, 3, "the axis")
            guard axis.count == 1 else { throw fail(l, "the axis must be one integer") }
            let reduction = attrString(l, "reduction", default: "none").lowercased()
            let map = ["none": "none", "sum": "add", "prod": "mul", "min": "min", "max": "max"]
            guard let r = map[reduction], try attrBool(l, "use_init_val", default: true) else {
                throw fail(l, "reduction '\(reduction)' (or use_init_val false) has no ONNX equivalent")
            }
            emit("ScatterElements", [ins[0], ins[1], ins[2]], [out], [a("axis", axis[0]), a("reduction", r)], name: l.name)
        case "ScatterNDUpdate":
            try need(3)
            emit("ScatterND", [ins[0], asInt64(l, 1, ins[1]), ins[2]], [out], name: l.name)
        case "CumSum":
            try need(1)
            let axis = ins.count > 1 ? asInt64(l, 1, ins[1]) : ints([0], base: out + "_axis", scalar: true)
            emit("CumSum", [ins[0], axis], [out], [a("exclusive", try attrBool(l, "exclusive", default: false) ? 1 : 0),
                                                  a("reverse", try attrBool(l, "reverse", default: false) ? 1 : 0)], name: l.name)
        default:
            throw OpenVINOError.unsupportedOps(path: path, ops: [l.type: 1])
        }
    }

    func isUsed(layer: Int, port: Int) -> Bool {
        source.values.contains { $0.layer == layer && $0.port == port }
    }

    func broadcastIsNumpy(_ l: IRLayer) throws(OpenVINOError) {
        let b = attrString(l, "auto_broadcast", default: "numpy").lowercased()
        guard b == "numpy" || b == "none" else { throw fail(l, "auto_broadcast '\(b)' is not translated (numpy and none are)") }
    }

    /// strides, dilations, pads (begins then ends) and auto_pad of convolutions and pools.
    func windowAttributes(_ l: IRLayer) throws(OpenVINOError) -> WindowAttributes {
        let strides = try attrInts(l, "strides")
        var window = WindowAttributes(node: l.name, strides: strides,
                                      dilations: try attrInts(l, "dilations", default: Array(repeating: 1, count: strides.count)))
        let autoPad = attrString(l, "auto_pad", default: "explicit").lowercased()
        switch autoPad {
        case "explicit", "notset", "":
            let begin = try attrInts(l, "pads_begin", default: Array(repeating: 0, count: strides.count))
            let end = try attrInts(l, "pads_end", default: Array(repeating: 0, count: strides.count))
            guard begin.count == strides.count, end.count == strides.count else {
                throw fail(l, "pads_begin/pads_end have \(begin.count)/\(end.count) values for \(strides.count) spatial dims")
            }
            window.pads = begin + end
        case "valid": window.autoPad = .valid
        case "same_upper": window.autoPad = .sameUpper
        case "same_lower": window.autoPad = .sameLower
        default: throw fail(l, "auto_pad '\(autoPad)' is not explicit, valid, same_upper or same_lower")
        }
        return window
    }

    /// GroupConvolution weights [G, O/G, I/G, k...] (backprop: [G, I/G, O/G, k...]) as ONNX's
    /// [G*O/G, I/G, k...] (ConvTranspose: [G*I/G, O/G, k...]), by a Reshape node. The group
    /// count comes from the port dims or the Const; the new shape, when the dims are not all
    /// written, from Shape nodes: [-1] + shape(w)[2...].
    mutating func groupedWeights(_ l: IRLayer, _ w: String, out: String) throws(OpenVINOError) -> (String, Int) {
        let d = dims(l, input: 1) ?? []
        guard let g = (d.first ?? nil) ?? constant(l, 1)?.shape.first, g > 0 else {
            throw fail(l, "the group count (first dim of the weights) is not known")
        }
        if d.count >= 3, let a0 = d[1], let rest = IRShape.concrete(Array(d[2...])) {
            let (rows, overflow) = g.multipliedReportingOverflow(by: a0)
            guard !overflow else { throw fail(l, "weight dims \(g) x \(a0) overflow") }
            return (value("Reshape", [w, ints([rows] + rest, base: out + "_wshape")], base: out + "_weights"), g)
        }
        let shape = value("Shape", [w], base: out + "_wdims")
        let tail = value("Slice", [shape, ints([2], base: out + "_two"), ints([Int(Int64.max)], base: out + "_end")], base: out + "_wtail")
        let target = value("Concat", [ints([-1], base: out + "_lead"), tail], [a("axis", 0)], base: out + "_wshape")
        return (value("Reshape", [w, target], base: out + "_weights"), g)
    }

    mutating func meanVarianceNormalization(_ l: IRLayer, _ ins: [String], _ out: String) throws(OpenVINOError) {
        let axes: String
        if ins.count > 1 {
            axes = asInt64(l, 1, ins[1])
        } else {
            guard let r = rank(l, input: 0) else { throw fail(l, "needs the input's rank") }
            let across = try attrBool(l, "across_channels", default: false)
            axes = ints(Array((across ? 1 : 2)..<r), base: out + "_axes")
        }
        let eps = try attrFloat(l, "eps")
        let t = l.inputs.first.flatMap(dtype) ?? .float32
        let inside = attrString(l, "eps_mode", default: l.version == "opset2" ? "outside_sqrt" : "inside_sqrt").lowercased() == "inside_sqrt"
        // Over the trailing axes with eps inside the root it is LayerNormalization with scale 1
        // and no bias (the runtime's fused kernel); the ones are shaped by the static dims.
        if inside, try attrBool(l, "normalize_variance", default: true), let r = rank(l, input: 0),
           let axisList = constantInts(l, 1), !axisList.isEmpty {
            let normalized = Set(axisList.map { $0 < 0 ? $0 + r : $0 })
            let first = r - normalized.count
            if normalized == Set(first..<r), first >= 0, let d = dims(l, input: 0), let tail = IRShape.concrete(Array(d[first...])),
               let count = ShapeMath.elementCount(tail), count <= 1 << 24 {
                let ones = constantValue(Tensor(shape: tail, scalars: [Float](repeating: 1, count: count)).converted(to: t), base: out + "_scale")
                emit("LayerNormalization", [ins[0], ones], [out], [a("axis", first - r), a("epsilon", eps)], name: l.name)
                return
            }
        }
        let mean = value("ReduceMean", [ins[0], axes], [a("keepdims", 1)], base: out + "_mean")
        let centred = value("Sub", [ins[0], mean], base: out + "_centred")
        guard try attrBool(l, "normalize_variance", default: true) else {
            emit("Identity", [centred], [out], name: l.name)
            return
        }
        let variance = value("ReduceMean", [value("Mul", [centred, centred], base: out + "_sq"), axes], [a("keepdims", 1)], base: out + "_var")
        let e = constantValue(Tensor(shape: [], scalars: [eps]).converted(to: t), base: out + "_eps")
        // eps_mode: inside_sqrt (the default of opset6; opset2 has no mode and adds eps outside).
        let denominator = inside ? value("Sqrt", [value("Add", [variance, e], base: out + "_vareps")], base: out + "_std")
            : value("Add", [value("Sqrt", [variance], base: out + "_sd"), e], base: out + "_std")
        emit("Div", [centred, denominator], [out], name: l.name)
    }

    mutating func stridedSlice(_ l: IRLayer, _ ins: [String], _ out: String) throws(OpenVINOError) {
        let begin = try requireInts(l, 1, "begin"), end = try requireInts(l, 2, "end")
        let strides = ins.count > 3 ? try requireInts(l, 3, "strides") : Array(repeating: 1, count: begin.count)
        guard begin.count == end.count, strides.count == begin.count else { throw fail(l, "begin, end and strides differ in length") }
        func mask(_ key: String) throws(OpenVINOError) -> [Int] {
            let m = try attrInts(l, key, default: [])
            return m + Array(repeating: 0, count: max(0, begin.count - m.count))
        }
        let bm = try mask("begin_mask"), em = try mask("end_mask"), shrink = try mask("shrink_axis_mask")
        let newAxis = try mask("new_axis_mask"), ellipsis = try mask("ellipsis_mask")
        if newAxis.contains(1) || ellipsis.contains(1) {
            throw fail(l, "new_axis_mask and ellipsis_mask are not translated")
        }
        var starts: [Int] = [], ends: [Int] = [], steps: [Int] = [], squeeze: [Int] = []
        for i in 0..<begin.count {
            let s = strides[i]
            guard s != 0 else { throw fail(l, "stride \(i) is 0") }
            if shrink[i] == 1 {
                starts.append(begin[i])
                ends.append(begin[i] == -1 || begin[i] == Int.max ? Int.max : begin[i] + 1)
                steps.append(1)
                squeeze.append(i)
                continue
            }
            // A mask bit 1 means: ignore the given value, take the whole extent.
            starts.append(bm[i] == 1 ? (s > 0 ? 0 : Int(Int64.max)) : begin[i])
            ends.append(em[i] == 1 ? (s > 0 ? Int(Int64.max) : Int(Int64.min)) : end[i])
            steps.append(s)
        }
        let x = [ins[0], ints(starts, base: out + "_starts"), ints(ends, base: out + "_ends"),
                 ints(Array(0..<begin.count), base: out + "_axes"), ints(steps, base: out + "_steps")]
        if squeeze.isEmpty {
            emit("Slice", x, [out], name: l.name)
        } else {
            emit("Squeeze", [value("Slice", x, base: out + "_slice"), ints(squeeze, base: out + "_squeeze")], [out], name: l.name)
        }
    }

    mutating func interpolate(_ l: IRLayer, _ ins: [String], _ out: String) throws(OpenVINOError) {
        guard l.version != "opset1" else { throw fail(l, "Interpolate-1 is not translated (opset4 and opset11 are)") }
        var attrs: [Attribute] = []
        let mode = attrString(l, "mode", default: "nearest").lowercased()
        switch mode {
        case "nearest": attrs.append(a("mode", "nearest"))
        case "linear", "linear_onnx": attrs.append(a("mode", "linear"))
        case "cubic": attrs.append(a("mode", "cubic")); attrs.append(a("cubic_coeff_a", try attrFloat(l, "cube_coeff", default: -0.75)))
        default: throw fail(l, "mode '\(mode)' has no ONNX Resize equivalent")
        }
        let ctm = attrString(l, "coordinate_transformation_mode", default: "half_pixel").lowercased()
        guard ["half_pixel", "pytorch_half_pixel", "asymmetric", "tf_half_pixel_for_nn", "align_corners"].contains(ctm) else {
            throw fail(l, "coordinate_transformation_mode '\(ctm)' is not translated")
        }
        attrs.append(a("coordinate_transformation_mode", ctm))
        if mode == "nearest" {
            let nm = attrString(l, "nearest_mode", default: "round_prefer_floor").lowercased()
            guard nm != "simple" else { throw fail(l, "nearest_mode 'simple' has no ONNX equivalent") }
            attrs.append(a("nearest_mode", nm))
        }
        if try attrBool(l, "antialias", default: false) { attrs.append(a("antialias", 1)) }
        for key in ["pads_begin", "pads_end"] where try attrInts(l, key, default: []).contains(where: { $0 != 0 }) {
            throw fail(l, "non-zero \(key) is not translated")
        }
        let bySizes = attrString(l, "shape_calculation_mode", default: "sizes").lowercased() == "sizes"
        // opset4: data, sizes, scales[, axes]; opset11: data, scales_or_sizes[, axes].
        let v4 = l.version == "opset4"
        let axesInput = v4 ? 3 : 2
        if ins.count > axesInput { attrs.append(a("axes", try requireInts(l, axesInput, "axes"))) }
        let sizesOrScales = v4 ? (bySizes ? 1 : 2) : 1
        if bySizes {
            emit("Resize", [ins[0], "", "", asInt64(l, sizesOrScales, ins[sizesOrScales])], [out], attrs, name: l.name)
        } else {
            guard ins.count > sizesOrScales else { throw fail(l, "has no scales input") }
            emit("Resize", [ins[0], "", ins[sizesOrScales]], [out], attrs, name: l.name)
        }
    }

    /// FakeQuantize as its definition: clamp to [input_low, input_high], round to one of `levels`
    /// steps, map onto [output_low, output_high]. ONNX Round ties to even (OpenVINO away from zero).
    mutating func fakeQuantize(_ l: IRLayer, _ ins: [String], _ out: String) throws(OpenVINOError) {
        try broadcastIsNumpy(l)
        let levels = try attrInt(l, "levels")
        guard levels >= 2 else { throw fail(l, "levels \(levels) is below 2") }
        let t = l.inputs.first.flatMap(dtype) ?? .float32
        let steps = constantValue(Tensor(shape: [], scalars: [Float(levels - 1)]).converted(to: t), base: out + "_steps")
        let (x, il, ih, ol, oh) = (ins[0], ins[1], ins[2], ins[3], ins[4])
        let clamped = value("Min", [value("Max", [x, il], base: out + "_lo"), ih], base: out + "_clamped")
        let scaled = value("Div", [value("Sub", [clamped, il], base: out + "_shift"), value("Sub", [ih, il], base: out + "_inrange")], base: out + "_unit")
        let q = value("Round", [value("Mul", [scaled, steps], base: out + "_levels")], base: out + "_q")
        let outRange = value("Sub", [oh, ol], base: out + "_outrange")
        emit("Add", [value("Mul", [value("Div", [q, steps], base: out + "_qunit"), outRange], base: out + "_scaled"), ol], [out], name: l.name)
    }

    mutating func topK(_ l: IRLayer, _ ins: [String], _ outs: [String]) throws(OpenVINOError) {
        guard outs.count == 2 else { throw fail(l, "has \(outs.count) outputs, needs 2") }
        let sort = attrString(l, "sort", default: "none").lowercased()
        guard sort != "index" else { throw fail(l, "sort 'index' has no ONNX TopK equivalent") }
        let mode = attrString(l, "mode", default: "max").lowercased()
        let k = value("Reshape", [asInt64(l, 1, ins[1]), ints([1], base: outs[0] + "_kshape")], base: outs[0] + "_k")
        let attrs = [a("axis", try attrInt(l, "axis")), a("largest", mode == "max" ? 1 : 0), a("sorted", 1)]
        let indexType = attrString(l, "index_element_type", default: "i32").lowercased()
        if indexType == "i64" {
            emit("TopK", [ins[0], k], outs, attrs, name: l.name)
        } else {
            let idx = temp(outs[1] + "_i64")
            emit("TopK", [ins[0], k], [outs[0], idx], attrs, name: l.name)
            emit("Cast", [idx], [outs[1]], [a("to", Int(DType.int32.onnxCode))])
        }
    }

    /// ScaledDotProductAttention (opset13) as its definition: softmax(Q·Kᵀ·scale + mask)·V, the
    /// scale 1/sqrt(head size) unless given, a boolean mask turned into 0 / -inf, a causal mask
    /// (which replaces any given one, as in OpenVINO) built from the sequence lengths by nodes.
    mutating func scaledDotProductAttention(_ l: IRLayer, _ ins: [String], _ out: String) throws(OpenVINOError) {
        guard ins.count <= 5 else { throw fail(l, "inputs past the scale (attention sinks) are not translated") }
        guard let r = rank(l, input: 1), r >= 2 else { throw fail(l, "needs the rank of K") }
        let t = l.inputs.first.flatMap(dtype) ?? .float32
        func scalar(_ v: Float, _ name: String) -> String {
            constantValue(Tensor(shape: [], scalars: [v]).converted(to: t), base: out + name)
        }
        var perm = Array(0..<r)
        perm.swapAt(r - 1, r - 2)
        var scores = value("MatMul", [ins[0], value("Transpose", [ins[1]], [a("perm", perm)], base: out + "_kt")], base: out + "_qk")
        let scale: String
        if ins.count > 4 {
            scale = ins[4]
        } else {
            guard let d = dims(l, input: 0)?.last ?? nil, d > 0 else { throw fail(l, "the default scale needs Q's head size") }
            scale = scalar(1 / Float(d).squareRoot(), "_scale")
        }
        scores = value("Mul", [scores, scale], base: out + "_scaled")
        if try attrBool(l, "causal", default: false) {
            // Column index > row index (top-left aligned) is masked: Range nodes over the lengths.
            let minus2 = ints([-2], base: out + "_m2", scalar: true)
            let zero = ints([0], base: out + "_zero", scalar: true), one = ints([1], base: out + "_one", scalar: true)
            func positions(_ x: String, _ axis: Int, _ name: String) -> String {
                let n = value("Gather", [value("Shape", [x], base: out + name + "_shape"), minus2], [a("axis", 0)], base: out + name + "_len")
                let r = value("Range", [zero, n, one], base: out + name + "_range")
                return value("Unsqueeze", [r, ints([axis], base: out + name + "_axis")], base: out + name)
            }
            let above = value("Greater", [positions(ins[1], 0, "_cols"), positions(ins[0], 1, "_rows")], base: out + "_above")
            scores = value("Where", [above, scalar(-.infinity, "_neginf"), scores], base: out + "_causal")
        } else if ins.count > 3 {
            if l.inputs[3].precision.uppercased() == "BOOL" {
                scores = value("Where", [ins[3], scores, scalar(-.infinity, "_neginf")], base: out + "_masked")
            } else {
                scores = value("Add", [scores, ins[3]], base: out + "_masked")
            }
        }
        let weights = value("Softmax", [scores], [a("axis", -1)], base: out + "_weights")
        emit("MatMul", [weights, ins[2]], [out], name: l.name)
    }

    /// NonMaxSuppression (opset5/9) as ONNX NonMaxSuppression, which selects the same boxes in
    /// the same order (per batch, per class, by score) when OpenVINO is not asked to sort across
    /// batches and classes. The selected scores ([batch, class, score]) and the valid count are
    /// gathered from the selection by nodes.
    mutating func nonMaxSuppression(_ l: IRLayer, _ ins: [String], _ outs: [String]) throws(OpenVINOError) {
        guard l.version == "opset5" || l.version == "opset9" else { throw fail(l, "only the opset5 and opset9 forms are translated") }
        guard !(try attrBool(l, "sort_result_descending", default: true)) else {
            throw fail(l, "sort_result_descending=true (sorted across batches and classes) has no ONNX equivalent")
        }
        if ins.count > 5 {
            guard let sigma = constant(l, 5), sigma.doubles().allSatisfy({ $0 == 0 }) else { throw fail(l, "soft NMS (soft_nms_sigma) is not translated") }
        }
        let base = outs.first ?? l.name
        let f32 = [a("to", Int(DType.float32.onnxCode))]
        var x = [ins[0], ins[1]]
        x.append(ins.count > 2 ? asInt64(l, 2, ins[2]) : ints([0], base: base + "_max", scalar: true))
        // OpenVINO's thresholds default to 0 when left out; ONNX's score threshold to none.
        x.append(ins.count > 3 ? value("Cast", [ins[3]], f32, base: base + "_iou") : constantValue(Tensor(scalar: Float(0)), base: base + "_iou"))
        x.append(ins.count > 4 ? value("Cast", [ins[4]], f32, base: base + "_score") : constantValue(Tensor(scalar: Float(0)), base: base + "_score"))
        let center = attrString(l, "box_encoding", default: "corner").lowercased() == "center"
        let i32 = attrString(l, "output_type", default: "i64").lowercased() == "i32"
        let selected = outs.count > 0 && !i32 ? outs[0] : temp(base + "_i64")
        emit("NonMaxSuppression", x, [selected], [a("center_point_box", center ? 1 : 0)], name: l.name)
        if i32, let o = outs.first { emit("Cast", [selected], [o], [a("to", Int(DType.int32.onnxCode))]) }
        if outs.count > 1, isUsed(layer: l.id, port: l.outputs[1].id) {
            let score = value("GatherND", [ins[1], selected], base: base + "_gathered")
            let bc = value("Slice", [selected, ints([0], base: base + "_s0"), ints([2], base: base + "_s2"), ints([1], base: base + "_s1")], base: base + "_bc")
            emit("Concat", [value("Cast", [bc], f32, base: base + "_bcf"), value("Unsqueeze", [score, ints([1], base: base + "_ax1")], base: base + "_col")],
                 [outs[1]], [a("axis", 1)])
        }
        if outs.count > 2, isUsed(layer: l.id, port: l.outputs[2].id) {
            let count = value("Slice", [value("Shape", [selected], base: base + "_shape"), ints([0], base: base + "_c0"), ints([1], base: base + "_c1")], base: base + "_count")
            emit("Cast", [count], [outs[2]], [a("to", Int((i32 ? DType.int32 : DType.int64).onnxCode))])
        }
    }

    /// LSTMSequence / GRUSequence (opset5, batch first) as ONNX LSTM / GRU between transposes. Gate
    /// blocks are regrouped by Split and Concat nodes: OpenVINO's LSTM order is f,i,c,o (ONNX
    /// i,o,f,c); GRU is z,r,h in both. ONNX's bias holds the input and the recurrent halves.
    mutating func recurrent(_ l: IRLayer, _ ins: [String], _ outs: [String]) throws(OpenVINOError) {
        let lstm = l.type == "LSTMSequence"
        guard l.version == "opset5" else { throw fail(l, "only the opset5 form is translated") }
        guard ins.count == (lstm ? 7 : 6), outs.count == (lstm ? 3 : 2) else {
            throw fail(l, "has \(ins.count) inputs and \(outs.count) outputs")
        }
        let hidden = try attrInt(l, "hidden_size")
        let direction = attrString(l, "direction", default: "forward").lowercased()
        let numDirections = direction == "bidirectional" ? 2 : 1
        let gates = lstm ? 4 : 3
        let (x, h0) = (ins[0], ins[1])
        let c0 = lstm ? ins[2] : ""
        let seq = lstm ? 3 : 2
        let (w, r, b) = (ins[seq + 1], ins[seq + 2], ins[seq + 3])
        let base = outs[0]
        let t = l.inputs.first.flatMap(dtype) ?? .float32
        func regroup(_ v: String, _ parts: Int, _ order: [Int], _ name: String) -> String {
            let pieces = (0..<parts).map { _ in temp(base + "_" + name + "_part") }
            emit("Split", [v], pieces, [a("axis", 1), a("num_outputs", parts)])
            return value("Concat", order.map { pieces[$0] }, [a("axis", 1)], base: base + "_" + name)
        }
        let W = lstm ? regroup(w, 4, [1, 3, 0, 2], "W") : w
        let R = lstm ? regroup(r, 4, [1, 3, 0, 2], "R") : r
        func zeros(_ n: Int) -> String {
            constantValue(Tensor(zeros: t, shape: [numDirections, n * hidden]), base: base + "_zeros")
        }
        let B: String
        var attrs = [a("hidden_size", hidden), a("direction", direction)]
        if lstm {
            let pieces = (0..<4).map { _ in temp(base + "_B_part") }
            emit("Split", [b], pieces, [a("axis", 1), a("num_outputs", 4)])
            B = value("Concat", [pieces[1], pieces[3], pieces[0], pieces[2], zeros(4)], [a("axis", 1)], base: base + "_B")
        } else if try attrBool(l, "linear_before_reset", default: false) {
            // [z, r, Wh, Rh] -> Wb [z, r, Wh], Rb [0, 0, Rh]
            let pieces = (0..<4).map { _ in temp(base + "_B_part") }
            emit("Split", [b], pieces, [a("axis", 1), a("num_outputs", 4)])
            B = value("Concat", [pieces[0], pieces[1], pieces[2], zeros(2), pieces[3]], [a("axis", 1)], base: base + "_B")
            attrs.append(a("linear_before_reset", 1))
        } else {
            B = value("Concat", [b, zeros(gates)], [a("axis", 1)], base: base + "_B")
        }
        let acts = IRShape.strings(attrString(l, "activations", default: ""))
        if !acts.isEmpty {
            let names = ["sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"]
            var mapped: [String] = []
            for act in acts {
                guard let m = names[act.lowercased()] else { throw fail(l, "activation '\(act)' is not translated") }
                mapped.append(m)
            }
            // The ONNX defaults are left implicit (the runtime's fused LSTM takes only those).
            let defaults = lstm ? ["Sigmoid", "Tanh", "Tanh"] : ["Sigmoid", "Tanh"]
            if mapped != defaults {
                attrs.append(a("activations", Array(repeating: mapped, count: numDirections).flatMap { $0 }))
            }
        }
        for key in ["activations_alpha", "activations_beta"] where !attrString(l, key, default: "").isEmpty {
            throw fail(l, "\(key) is not translated")
        }
        let clip = try attrFloat(l, "clip", default: 0)
        if clip > 0 { attrs.append(a("clip", clip)) }
        let lens = value("Cast", [ins[seq]], [a("to", Int(DType.int32.onnxCode))], base: base + "_lens")
        // ONNX's default layout is sequence first (ONNX Runtime has no batch-first LSTM/GRU):
        // X [batch, seq, in] -> [seq, batch, in], states [batch, dirs, hidden] -> [dirs, batch, hidden].
        let swap = [a("perm", [1, 0, 2])]
        var onnxIns = [value("Transpose", [x], swap, base: base + "_x"), W, R, B, lens, value("Transpose", [h0], swap, base: base + "_h0")]
        if lstm { onnxIns.append(value("Transpose", [c0], swap, base: base + "_c0")) }
        let y = temp(base + "_tdbh")
        let states = outs.dropFirst().map { temp($0 + "_dbh") }
        emit(lstm ? "LSTM" : "GRU", onnxIns, [y] + states, attrs, name: l.name)
        // Y [seq, dirs, batch, hidden] -> OpenVINO's [batch, dirs, seq, hidden].
        emit("Transpose", [y], [outs[0]], [a("perm", [2, 1, 0, 3])])
        for (state, o) in zip(states, outs.dropFirst()) { emit("Transpose", [state], [o], swap) }
    }
}
