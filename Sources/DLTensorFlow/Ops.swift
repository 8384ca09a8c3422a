import CTensorFlowProtos
import DLGraph
import DLTensor

/// TensorFlow ops as IR ops. Attributes become IR attributes or constant inputs; channels-last
/// ops run between transposes; nothing is computed here.
extension GraphImporter {
    static let elementwise: [String: String] = [
        "Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div", "Div": "Div",
        "Maximum": "Max", "Minimum": "Min", "Pow": "Pow", "Equal": "Equal", "Less": "Less", "Greater": "Greater",
        "LessEqual": "LessOrEqual", "GreaterEqual": "GreaterOrEqual", "LogicalAnd": "And", "LogicalOr": "Or",
        "AddN": "Sum", "SelectV2": "Where", "Select": "Where",
    ]
    static let unary: [String: String] = [
        "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu", "Selu": "Selu", "Exp": "Exp",
        "Log": "Log", "Abs": "Abs", "Neg": "Neg", "Sqrt": "Sqrt", "Floor": "Floor", "Ceil": "Ceil", "Round": "Round",
        "Sin": "Sin", "Cos": "Cos", "Erf": "Erf", "Reciprocal": "Reciprocal", "Inv": "Reciprocal", "Sign": "Sign",
        "Softplus": "Softplus", "Softsign": "Softsign", "LogicalNot": "Not",
    ]
    static let reductions: [String: String] = [
        "Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin", "Prod": "ReduceProd",
    ]
    static let passThrough: Set<String> = ["Identity", "StopGradient", "Snapshot", "PreventGradient", "EnsureShape", "PlaceholderWithDefault", "CheckNumerics"]

    mutating func translate(_ n: TFNode, _ ins: [TFValue], scope: Scope) throws(TensorFlowError) -> [TFValue] {
        let base = scope.prefix + n.name
        func bad(_ reason: String) -> TensorFlowError { .badNode(path: path, node: base, reason: "(\(n.op)) \(reason)") }
        func t(_ i: Int) throws(TensorFlowError) -> String {
            guard i < ins.count else { throw bad("has \(ins.count) inputs, needs at least \(i + 1)") }
            return try tensor(ins[i], node: base)
        }
        func const(_ i: Int) -> Tensor? {
            guard i < ins.count, case .tensor(let name) = ins[i] else { return nil }
            return constants[name]
        }
        func constInts(_ i: Int, _ what: String) throws(TensorFlowError) -> [Int] {
            guard let c = const(i), c.dtype.isInteger else { throw bad("needs a constant \(what); it is computed at run time") }
            return c.doubles().map { Int($0) }
        }
        func one(_ s: String) -> [TFValue] { [.tensor(s)] }
        func attrInt(_ k: String, _ v: Int) -> Attribute { Attribute(name: k, value: .int(v)) }
        func attrInts(_ k: String, _ v: [Int]) -> Attribute { Attribute(name: k, value: .ints(v)) }
        /// A scalar constant of the node's element type T.
        func scalar(_ v: Double) -> String {
            let dtype = n.type("T").flatMap(TFDataType.dtype) ?? .float32
            return constant(Tensor(shape: [], scalars: [v]).converted(to: dtype), name: base + "/const")
        }
        func asInt64(_ s: String) -> String { emit1("Cast", [s], [attrInt("to", Int(DType.int64.onnxCode))], name: base + "/int64") }
        /// `axes` as a 1-D int64 input: a constant when known, else cast and flattened.
        func axesInput(_ i: Int) throws(TensorFlowError) -> String {
            if let c = const(i), c.dtype.isInteger { return int64s(c.doubles().map { Int($0) }, name: base + "/axes") }
            let flat = int64s([-1], name: base + "/flat")
            return emit1("Reshape", [asInt64(try t(i)), flat], name: base + "/axes")
        }
        let nhwc = (n.string("data_format") ?? "NHWC").hasSuffix("C")
        func toNCHW(_ x: String) -> String { nhwc ? emit1("Transpose", [x], [attrInts("perm", [0, 3, 1, 2])], name: base + "/nchw") : x }
        func fromNCHW(_ y: String) -> String { nhwc ? emit1("Transpose", [y], [attrInts("perm", [0, 2, 3, 1])], name: base) : y }
        /// Spatial (H, W) entries of a 4-entry NHWC/NCHW list attribute.
        func spatial(_ k: String, default d: Int) throws(TensorFlowError) -> [Int] {
            guard let v = n.ints(k) else { return [d, d] }
            guard v.count == 4 else { throw bad("attribute \(k) has \(v.count) entries, expected 4") }
            return nhwc ? [v[1], v[2]] : [v[2], v[3]]
        }
        /// The window attributes of a convolution or pool, its padding read from `padding`.
        func window(kernel: [Int]? = nil, strides: [Int], dilations: [Int]? = nil, group: Int = 1) throws(TensorFlowError) -> [Attribute] {
            var window = WindowAttributes(node: base, kernelShape: kernel, strides: strides, dilations: dilations, group: group)
            switch n.string("padding") ?? "VALID" {
            case "SAME": window.autoPad = .sameUpper
            case "VALID": window.pads = [0, 0, 0, 0]
            case "EXPLICIT":
                guard let p = n.ints("explicit_paddings"), p.count == 8 else { throw bad("explicit_paddings must have 8 entries") }
                let (h, w) = nhwc ? (2, 4) : (4, 6)
                window.pads = [p[h], p[w], p[h + 1], p[w + 1]]
            case let other: throw bad("padding '\(other)' is not supported")
            }
            return window.attributes
        }

        if let op = Self.elementwise[n.op] {
            return one(emit1(op, try (0..<ins.count).map { i throws(TensorFlowError) in try t(i) }, name: base))
        }
        if let op = Self.unary[n.op] { return one(emit1(op, [try t(0)], name: base)) }
        if Self.passThrough.contains(n.op) { return [ins.first ?? .tensor("")] }
        if let op = Self.reductions[n.op] {
            let keep = n.bool("keep_dims") ?? false
            return one(emit1(op, [try t(0), try axesInput(1)], [attrInt("keepdims", keep ? 1 : 0)], name: base))
        }
        switch n.op {
        case "IdentityN": return ins
        case "NoOp": return []
        case "Const":
            if scope.prefix.isEmpty, let w = weightConstants[n.name] { return one(constant(w, name: base)) }
            guard case .tensor(let c)? = n.attrs["value"] else { throw bad("has no value") }
            switch c.decoded {
            case .success(let v): return one(constant(v, name: base))
            case .failure(let e): throw bad("its value \(e.reason)")
            }
        case "Placeholder":
            guard let a = scope.args[n.name] else { throw bad("is an input the signature does not feed") }
            return [a]
        case "VarHandleOp":
            let shared = n.string("shared_name") ?? n.name
            return [.resource(key: bundle?.entry(shared) != nil && model.variableNames.isEmpty ? shared : nil, name: shared)]
        case "VariableV2":
            // TF1 reference variables: the checkpoint key is the variable's name.
            return one(try variable(n.name, handle: n.name, node: base))
        case "ReadVariableOp":
            guard case .resource(let key, let handle)? = ins.first else { throw bad("does not read a variable handle") }
            guard let key else { throw bad("reads variable '\(handle)', which is not bound to a checkpoint entry") }
            return one(try variable(key, handle: handle, node: base))
        case "StatefulPartitionedCall", "PartitionedCall":
            guard let f = n.fn("f") else { throw bad("names no function") }
            return try call(f, ins, node: n, scope: scope)
        case "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3":
            let (ta, tb) = n.op == "MatMul" ? (n.bool("transpose_a") ?? false, n.bool("transpose_b") ?? false)
                : (n.bool("adj_x") ?? false, n.bool("adj_y") ?? false)
            func side(_ i: Int, _ flip: Bool) throws(TensorFlowError) -> String {
                let x = try t(i)
                guard flip else { return x }
                let rank = n.op == "MatMul" ? 2 : staticType(x)?.rank
                guard let rank, rank >= 2 else { throw bad("transposes an operand whose rank is known only at run time") }
                return emit1("Transpose", [x], [attrInts("perm", Array(0..<(rank - 2)) + [rank - 1, rank - 2])], name: base + "/t")
            }
            return one(emit1("MatMul", [try side(0, ta), try side(1, tb)], name: base))
        case "BiasAdd":
            guard nhwc else {
                let b = emit1("Unsqueeze", [try t(1), int64s([1, 2], name: base + "/axes")], name: base + "/bias")
                return one(emit1("Add", [try t(0), b], name: base))
            }
            return one(emit1("Add", [try t(0), try t(1)], name: base))
        case "Relu6": return one(emit1("Clip", [try t(0), scalar(0), scalar(6)], name: base))
        case "LeakyRelu": return one(emit1("LeakyRelu", [try t(0)], [Attribute(name: "alpha", value: .float(n.float("alpha") ?? 0.2))], name: base))
        case "Rsqrt": return one(emit1("Reciprocal", [emit1("Sqrt", [try t(0)], name: base + "/sqrt")], name: base))
        case "Square": return one(emit1("Mul", [try t(0), try t(0)], name: base))
        case "SquaredDifference":
            let d = emit1("Sub", [try t(0), try t(1)], name: base + "/diff")
            return one(emit1("Mul", [d, d], name: base))
        case "NotEqual": return one(emit1("Not", [emit1("Equal", [try t(0), try t(1)], name: base + "/eq")], name: base))
        case "Softmax", "LogSoftmax": return one(emit1(n.op, [try t(0)], [attrInt("axis", -1)], name: base))
        case "Conv2D":
            let s = try spatial("strides", default: 1), d = try spatial("dilations", default: 1)
            let w = emit1("Transpose", [try t(1)], [attrInts("perm", [3, 2, 0, 1])], name: base + "/filter")
            let y = emit1("Conv", [toNCHW(try t(0)), w], try window(strides: s, dilations: d), name: base + "/conv")
            return one(fromNCHW(y))
        case "DepthwiseConv2dNative":
            guard let f = staticType(try t(1))?.dims?.concrete, f.count == 4 else { throw bad("needs a filter of known shape [H, W, C, M]") }
            let (h, w, c, m) = (f[0], f[1], f[2], f[3])
            let flat = emit1("Reshape", [try t(1), int64s([h, w, 1, c * m], name: base + "/shape")], name: base + "/filter")
            let filter = emit1("Transpose", [flat], [attrInts("perm", [3, 2, 0, 1])], name: base + "/filter")
            let s = try spatial("strides", default: 1), d = try spatial("dilations", default: 1)
            let y = emit1("Conv", [toNCHW(try t(0)), filter], try window(strides: s, dilations: d, group: c), name: base + "/conv")
            return one(fromNCHW(y))
        case "Conv2DBackpropInput":
            // The gradient of Conv2D with respect to its input: a transposed convolution whose
            // output size is the constant input_sizes; pads and output padding follow from it.
            let sizes = try constInts(0, "input_sizes")
            guard sizes.count == 4, let k = staticType(try t(1))?.dims?.concrete, k.count == 4,
                  let dy = staticType(try t(2))?.dims?.concrete, dy.count == 4 else {
                throw bad("needs constant input_sizes and a filter and gradient of known shapes")
            }
            let s = try spatial("strides", default: 1), d = try spatial("dilations", default: 1)
            let outHW = nhwc ? [sizes[1], sizes[2]] : [sizes[2], sizes[3]], inHW = nhwc ? [dy[1], dy[2]] : [dy[2], dy[3]]
            var begin: [Int] = [], end: [Int] = [], extra: [Int] = []
            for i in 0..<2 {
                let full = s[i] * (inHW[i] - 1) + (k[i] - 1) * d[i] + 1
                let total = full - outHW[i]
                switch n.string("padding") ?? "VALID" {
                case "SAME" where total >= 0: begin.append(total / 2); end.append(total - total / 2); extra.append(0)
                case "VALID", "SAME": begin.append(0); end.append(max(total, 0)); extra.append(max(-total, 0))
                default: throw bad("padding '\(n.string("padding") ?? "")' is not supported")
                }
            }
            let w = emit1("Transpose", [try t(1)], [attrInts("perm", [3, 2, 0, 1])], name: base + "/filter")
            let y = emit1("ConvTranspose", [toNCHW(try t(2)), w],
                          WindowAttributes(node: base, strides: s, dilations: d, pads: begin + end, outputPadding: extra).attributes,
                          name: base + "/convt")
            return one(fromNCHW(y))
        case "ResizeBilinear", "ResizeNearestNeighbor":
            let align = n.bool("align_corners") ?? false, half = n.bool("half_pixel_centers") ?? false
            let bilinear = n.op == "ResizeBilinear"
            var attrs = [Attribute(name: "mode", value: .string(bilinear ? "linear" : "nearest")),
                         Attribute(name: "coordinate_transformation_mode", value: .string(align ? "align_corners" : half ? "half_pixel" : "asymmetric"))]
            // TensorFlow's nearest neighbour: floor((x + 0.5) * scale) with half-pixel centers
            // (half_pixel rounded half up), floor(x * scale) without, rounding with align_corners.
            if !bilinear { attrs.append(Attribute(name: "nearest_mode", value: .string(align || half ? "round_prefer_ceil" : "floor"))) }
            let x = toNCHW(try t(0))
            let nc = emit1("Slice", [emit1("Shape", [x], name: base + "/shape"), int64s([0], name: base + "/zero"), int64s([2], name: base + "/two")], name: base + "/nc")
            let sizes = emit1("Concat", [nc, asInt64(try t(1))], [attrInt("axis", 0)], name: base + "/sizes")
            return one(fromNCHW(emit1("Resize", [x, "", "", sizes], attrs, name: base + "/resize")))
        case "_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul":
            // TF.js's fused ops: the convolution or matmul, then `fused_ops` in order, each
            // taking its arguments from the inputs after the first two.
            var core = n
            core.op = n.op == "_FusedMatMul" ? "MatMul" : n.op == "_FusedConv2D" ? "Conv2D" : "DepthwiseConv2dNative"
            core.inputs = Array(n.inputs.prefix(2))
            guard case .tensor(var y)? = try translate(core, Array(ins.prefix(2)), scope: scope).first else { return [] }
            var fused: [String] = []
            if case .list(_, _, _, let names)? = n.attrs["fused_ops"] { fused = names }
            var next = 2
            func arg() throws(TensorFlowError) -> String {
                defer { next += 1 }
                return try t(next)
            }
            for f in fused {
                switch f {
                case "BiasAdd", "Add", "AddV2": y = emit1("Add", [y, try arg()], name: base)
                case "FusedBatchNorm":
                    let (sc, of, mu, va) = (try arg(), try arg(), try arg(), try arg())
                    let bn = emit1("BatchNormalization", [toNCHW(y), sc, of, mu, va],
                                   [Attribute(name: "epsilon", value: .float(n.float("epsilon") ?? 0.0001))], name: base + "/bn")
                    y = fromNCHW(bn)
                case "Relu", "Sigmoid", "Tanh", "Elu", "Selu": y = emit1(f, [y], name: base)
                case "Relu6": y = emit1("Clip", [y, scalar(0), scalar(6)], name: base)
                case "LeakyRelu": y = emit1("LeakyRelu", [y], [Attribute(name: "alpha", value: .float(n.float("leakyrelu_alpha") ?? 0.2))], name: base)
                case "Prelu": y = emit1("PRelu", [y, try arg()], name: base)
                default: throw bad("fuses '\(f)', which DLKit does not translate")
                }
            }
            return one(y)
        case "If", "StatelessIf":
            guard let thenF = n.fn("then_branch"), let elseF = n.fn("else_branch") else { throw bad("names no branch functions") }
            let cond = try t(0), args = Array(ins.dropFirst())
            func branch(_ f: String, _ label: String) throws(TensorFlowError) -> Graph {
                try subgraph(name: base + "/" + label, inputs: []) { (g: inout GraphImporter) throws(TensorFlowError) -> [String] in
                    var out: [String] = []
                    for v in try g.call(f, args, node: n, scope: scope) { out.append(try g.tensor(v, node: base)) }
                    return out
                }
            }
            let (a, b) = (try branch(thenF, "then"), try branch(elseF, "else"))
            guard a.outputs.count == b.outputs.count else { throw bad("its branches return \(a.outputs.count) and \(b.outputs.count) values") }
            guard !a.outputs.isEmpty else { return [] }
            return emit("If", [cond], [Attribute(name: "then_branch", value: .graph(a)), Attribute(name: "else_branch", value: .graph(b))],
                        outputs: a.outputs.count, name: base).map { .tensor($0) }
        case "While", "StatelessWhile":
            // A Loop without a trip count: the condition function runs once on the initial values
            // and again at the end of each body. Variable handles stay bound (TensorFlow passes
            // them through unchanged); tensors are carried.
            guard let condF = n.fn("cond"), let bodyF = n.fn("body") else { throw bad("names no cond/body functions") }
            guard let c0 = try call(condF, ins, node: n, scope: scope).first else { throw bad("its condition returns nothing") }
            let first = try tensor(c0, node: base)
            let carried = ins.indices.filter { if case .tensor = ins[$0] { return true } else { return false } }
            let iter = fresh(base + "/iter"), condIn = fresh(base + "/cond_in")
            let loopIns = carried.map { fresh(base + "/v\($0)") }
            // Body inputs carry element types (ONNX runtimes need them); shapes may change per iteration.
            var bodyInputs = [ValueInfo(name: iter, type: TensorType(dtype: .int64, shape: [])),
                              ValueInfo(name: condIn, type: TensorType(dtype: .bool, shape: []))]
            for (j, i) in carried.enumerated() {
                let initial = try tensor(ins[i], node: base)
                if let element = sequences[initial] {
                    sequences[loopIns[j]] = element
                    bodyInputs.append(ValueInfo(name: loopIns[j], container: .sequence(.tensor(TensorType(dtype: element, dims: nil)))))
                    continue
                }
                let known = staticType(initial)
                bodyInputs.append(ValueInfo(name: loopIns[j], type: known.map { TensorType(dtype: $0.dtype, dims: $0.dims.map { $0.map { _ in .unknown } }) }))
            }
            let body = try subgraph(name: base + "/body", inputs: bodyInputs) {
                (g: inout GraphImporter) throws(TensorFlowError) -> [String] in
                var args = ins
                for (j, i) in carried.enumerated() { args[i] = .tensor(loopIns[j]) }
                let next = try g.call(bodyF, args, node: n, scope: scope)
                guard next.count == ins.count else {
                    throw .badNode(path: g.path, node: base, reason: "(\(n.op)) its body returns \(next.count) values for \(ins.count)")
                }
                var after = ins
                for i in carried { after[i] = next[i] }
                guard let c = try g.call(condF, after, node: n, scope: scope).first else {
                    throw .badNode(path: g.path, node: base, reason: "(\(n.op)) its condition returns nothing")
                }
                var out = [try g.tensor(c, node: base)]
                for i in carried { out.append(try g.tensor(next[i], node: base)) }
                return out
            }
            guard !carried.isEmpty else { throw bad("carries no tensors") }
            let outs = emit("Loop", ["", first] + carried.map { i in (try? tensor(ins[i], node: base)) ?? "" },
                            [Attribute(name: "body", value: .graph(body))], outputs: carried.count, name: base)
            var result = ins
            for (j, i) in carried.enumerated() {
                result[i] = .tensor(outs[j])
                if let element = sequences[loopIns[j]] { sequences[outs[j]] = element }
            }
            return result
        // Tensor lists (TensorArray, Keras recurrent loops) are IR sequences.
        case "TensorListFromTensor":
            let x = try t(0)
            let seq = emit1("SplitToSequence", [x], [attrInt("axis", 0), attrInt("keepdims", 0)], name: base)
            sequences[seq] = staticType(x)?.dtype ?? n.type("element_dtype").flatMap(TFDataType.dtype) ?? .float32
            return one(seq)
        case "TensorListReserve", "EmptyTensorList":
            guard let element = n.type("element_dtype").flatMap(TFDataType.dtype) else { throw bad("has an element type DLKit does not hold") }
            let seq = emit1("SequenceEmpty", [], [attrInt("dtype", Int(element.onnxCode))], name: base)
            sequences[seq] = element
            return one(seq)
        case "TensorListGetItem": return one(emit1("SequenceAt", [try t(0), try t(1)], name: base))
        case "TensorListStack":
            return one(emit1("ConcatFromSequence", [try t(0)], [attrInt("axis", 0), attrInt("new_axis", 1)], name: base))
        case "TensorListLength":
            let length = emit1("SequenceLength", [try t(0)], name: base + "/int64")
            return one(emit1("Cast", [length], [attrInt("to", Int(DType.int32.onnxCode))], name: base))
        case "TensorListSetItem", "TensorListPushBack":
            // Item `index` is replaced when the list has it, else appended (TensorFlow's reserved
            // lists are written in order by TensorArray loops).
            let list = try t(0), element = sequences[list] ?? .float32
            if n.op == "TensorListPushBack" {
                let seq = emit1("SequenceInsert", [list, try t(1)], name: base)
                sequences[seq] = element
                return one(seq)
            }
            let (index, item) = (asInt64(try t(1)), try t(2))
            let has = emit1("Less", [index, emit1("SequenceLength", [list], name: base + "/length")], name: base + "/has")
            let replace = try subgraph(name: base + "/replace", inputs: []) { (g: inout GraphImporter) throws(TensorFlowError) -> [String] in
                [g.emit1("SequenceInsert", [g.emit1("SequenceErase", [list, index], name: base + "/erase"), item, index], name: base + "/insert")]
            }
            let append = try subgraph(name: base + "/append", inputs: []) { (g: inout GraphImporter) throws(TensorFlowError) -> [String] in
                [g.emit1("SequenceInsert", [list, item], name: base + "/append")]
            }
            let seq = emit1("If", [has], [Attribute(name: "then_branch", value: .graph(replace)), Attribute(name: "else_branch", value: .graph(append))], name: base)
            sequences[seq] = element
            return one(seq)
        case "MaxPool", "AvgPool":
            let k = try spatial("ksize", default: 1), s = try spatial("strides", default: 1)
            let y = emit1(n.op == "MaxPool" ? "MaxPool" : "AveragePool", [toNCHW(try t(0))],
                          try window(kernel: k, strides: s), name: base + "/pool")
            return one(fromNCHW(y))
        case "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3":
            guard n.bool("is_training") != true else { throw bad("is in training mode (batch statistics); export the model for inference") }
            let y = emit1("BatchNormalization", [toNCHW(try t(0)), try t(1), try t(2), try t(3), try t(4)],
                          [Attribute(name: "epsilon", value: .float(n.float("epsilon") ?? 0.0001))], name: base + "/bn")
            return [.tensor(fromNCHW(y)), ins[3], ins[4], ins[3], ins[4], ins[3]]
        case "Reshape":
            return one(emit1("Reshape", [try t(0), const(1) != nil ? try axesInput(1) : asInt64(try t(1))], name: base))
        case "Squeeze":
            let dims = n.ints("squeeze_dims") ?? n.ints("axis") ?? []
            return one(emit1("Squeeze", [try t(0)] + (dims.isEmpty ? [] : [int64s(dims, name: base + "/axes")]), name: base))
        case "ExpandDims": return one(emit1("Unsqueeze", [try t(0), try axesInput(1)], name: base))
        case "Transpose": return one(emit1("Transpose", [try t(0)], [attrInts("perm", try constInts(1, "permutation"))], name: base))
        case "ConcatV2":
            guard ins.count >= 2 else { throw bad("has no values to concatenate") }
            let axis = try constInts(ins.count - 1, "axis")
            guard axis.count == 1 else { throw bad("axis must be a scalar") }
            return one(emit1("Concat", try (0..<(ins.count - 1)).map { i throws(TensorFlowError) in try t(i) }, [attrInt("axis", axis[0])], name: base))
        case "Pack":
            let axis = n.int("axis") ?? 0
            let axes = int64s([axis], name: base + "/axes")
            var parts: [String] = []
            for i in 0..<ins.count { parts.append(emit1("Unsqueeze", [try t(i), axes], name: base + "/item")) }
            return one(emit1("Concat", parts, [attrInt("axis", axis)], name: base))
        case "Unpack":
            let num = n.int("num") ?? 0, axis = n.int("axis") ?? 0
            guard num >= 1, num <= 1 << 16 else { throw bad("unpacks \(num) values") }
            let parts = emit("Split", [try t(0), int64s(Array(repeating: 1, count: num), name: base + "/split")], [attrInt("axis", axis)], outputs: num, name: base + "/split")
            let axes = int64s([axis], name: base + "/axes")
            return parts.map { .tensor(emit1("Squeeze", [$0, axes], name: base)) }
        case "Split":
            let num = n.int("num_split") ?? 0
            guard num >= 1, num <= 1 << 16 else { throw bad("splits into \(num) values") }
            let axis = try constInts(0, "axis")
            guard axis.count == 1 else { throw bad("axis must be a scalar") }
            return emit("Split", [try t(1)], [attrInt("axis", axis[0]), attrInt("num_outputs", num)], outputs: num, name: base).map { .tensor($0) }
        case "SplitV":
            let sizes = try constInts(1, "size_splits"), axis = try constInts(2, "axis")
            guard axis.count == 1, !sizes.contains(-1), !sizes.isEmpty else { throw bad("needs constant sizes without -1 and a scalar axis") }
            return emit("Split", [try t(0), int64s(sizes, name: base + "/sizes")], [attrInt("axis", axis[0])], outputs: sizes.count, name: base).map { .tensor($0) }
        case "StridedSlice":
            let (x, b, e, s) = (try t(0), try constInts(1, "begin"), try constInts(2, "end"), try constInts(3, "strides"))
            return one(try stridedSlice(n, x, begin: b, end: e, strides: s, base: base))
        case "Slice":
            let begin = try constInts(1, "begin"), size = try constInts(2, "size")
            guard begin.count == size.count else { throw bad("begin and size differ in length") }
            let end = zip(begin, size).map { b, s in s < 0 ? Int(Int64.max) : b + s }
            return one(emit1("Slice", [try t(0), int64s(begin, name: base + "/begin"), int64s(end, name: base + "/end"),
                                       int64s(Array(0..<begin.count), name: base + "/axes")], name: base))
        case "Pad", "PadV2", "MirrorPad":
            let p: String
            if let c = const(1), c.dtype.isInteger, c.rank == 2, c.shape[1] == 2 {
                let v = c.doubles().map { Int($0) }
                p = int64s(stride(from: 0, to: v.count, by: 2).map { v[$0] } + stride(from: 1, to: v.count, by: 2).map { v[$0] }, name: base + "/pads")
            } else {
                let tr = emit1("Transpose", [asInt64(try t(1))], [attrInts("perm", [1, 0])], name: base + "/pads")
                p = emit1("Reshape", [tr, int64s([-1], name: base + "/flat")], name: base + "/pads")
            }
            var attrs: [Attribute] = []
            if n.op == "MirrorPad" {
                guard n.string("mode") == "REFLECT" else { throw bad("mode '\(n.string("mode") ?? "")' has no IR form (only REFLECT)") }
                attrs.append(Attribute(name: "mode", value: .string("reflect")))
            }
            return one(emit1("Pad", [try t(0), p] + (n.op == "PadV2" ? [try t(2)] : []), attrs, name: base))
        case "Shape":
            let s = emit1("Shape", [try t(0)], name: base + "/int64")
            let out = n.type("out_type").flatMap(TFDataType.dtype) ?? .int32
            return one(out == .int64 ? s : emit1("Cast", [s], [attrInt("to", Int(out.onnxCode))], name: base))
        case "Cast":
            guard let to = n.type("DstT").flatMap(TFDataType.dtype) else { throw bad("casts to a type DLKit does not hold") }
            return one(emit1("Cast", [try t(0)], [attrInt("to", Int(to.onnxCode))], name: base))
        case "Fill": return one(emit1("Expand", [try t(1), asInt64(try t(0))], name: base))
        case "ZerosLike", "OnesLike":
            guard let dtype = n.type("T").flatMap(TFDataType.dtype) else { throw bad("has a type DLKit does not hold") }
            let fill = n.op == "ZerosLike" ? Tensor(zeros: dtype, shape: []) : Tensor(shape: [], scalars: [1.0]).converted(to: dtype)
            return one(emit1("Expand", [constant(fill, name: base + "/value"), emit1("Shape", [try t(0)], name: base + "/shape")], name: base))
        case "Tile": return one(emit1("Tile", [try t(0), asInt64(try t(1))], name: base))
        case "Range": return one(emit1("Range", [try t(0), try t(1), try t(2)], name: base))
        case "GatherV2":
            guard (n.int("batch_dims") ?? 0) == 0 else { throw bad("batch_dims other than 0 is not supported") }
            let axis = try constInts(2, "axis")
            guard axis.count == 1 else { throw bad("axis must be a scalar") }
            return one(emit1("Gather", [try t(0), try t(1)], [attrInt("axis", axis[0])], name: base))
        case "ArgMax", "ArgMin":
            let axis = try constInts(1, "axis")
            guard axis.count == 1 else { throw bad("axis must be a scalar") }
            let y = emit1(n.op, [try t(0)], [attrInt("axis", axis[0]), attrInt("keepdims", 0)], name: base + "/int64")
            let out = n.type("output_type").flatMap(TFDataType.dtype) ?? .int64
            return one(out == .int64 ? y : emit1("Cast", [y], [attrInt("to", Int(out.onnxCode))], name: base))
        case "Einsum":
            guard let eq = n.string("equation") else { throw bad("has no equation") }
            return one(emit1("Einsum", try (0..<ins.count).map { i throws(TensorFlowError) in try t(i) }, [Attribute(name: "equation", value: .string(eq))], name: base))
        default:
            if unsupported[n.op] == nil { unsupported[n.op] = base }
            return []
        }
    }

    /// StridedSlice with constant begin/end/strides: a Slice over the axes the spec reads, a
    /// Squeeze of the shrunk ones, an Unsqueeze for the new ones. The input's rank need not be
    /// known: entries before the ellipsis (or all entries, without one) address axes from the
    /// front, entries after it from the back, as negative axes, which Slice, Squeeze and
    /// Unsqueeze all take. `begin_mask`/`end_mask` make an entry's bound the whole axis; a
    /// shrink entry takes the one element at `begin`.
    mutating func stridedSlice(_ n: TFNode, _ x: String, begin: [Int], end: [Int], strides: [Int], base: String) throws(TensorFlowError) -> String {
        func bad(_ reason: String) -> TensorFlowError { .badNode(path: path, node: base, reason: "(StridedSlice) \(reason)") }
        let k = begin.count
        guard end.count == k, strides.count == k, k <= 64, !strides.contains(0) else {
            throw bad("begin, end and strides must have equal lengths (at most 64) and no zero stride")
        }
        let bm = n.int("begin_mask") ?? 0, em = n.int("end_mask") ?? 0, shrink = n.int("shrink_axis_mask") ?? 0
        let ellipsis = n.int("ellipsis_mask") ?? 0, newAxis = n.int("new_axis_mask") ?? 0
        func bit(_ mask: Int, _ i: Int) -> Bool { i < 64 && mask & (1 << i) != 0 }
        let ellipses = (0..<k).filter { bit(ellipsis, $0) }
        guard ellipses.count <= 1 else { throw bad("ellipsis_mask \(ellipsis) marks more than one ellipsis") }
        let cut = ellipses.first ?? k
        // Entries after the ellipsis count from the back: the input axes they read, and the
        // output axes they make (kept axes and new ones), from that entry to the end.
        var readFromBack = [Int](repeating: 0, count: k + 1), outFromBack = [Int](repeating: 0, count: k + 1)
        for i in stride(from: k - 1, to: cut, by: -1) {
            let reads = !bit(newAxis, i)
            readFromBack[i] = readFromBack[i + 1] + (reads ? 1 : 0)
            outFromBack[i] = outFromBack[i + 1] + (bit(shrink, i) && reads ? 0 : 1)
        }
        let big = Int(Int64.max), small = Int(Int64.min)
        var b: [Int] = [], e: [Int] = [], steps: [Int] = [], axes: [Int] = [], squeeze: [Int] = [], unsqueeze: [Int] = []
        var inAxis = 0, outAxis = 0  // front positions for the entries before the ellipsis
        for i in 0..<k where i != cut {
            let back = i > cut
            if bit(newAxis, i) {
                unsqueeze.append(back ? -outFromBack[i] : outAxis)
                outAxis += 1
                continue
            }
            let axis = back ? -readFromBack[i] : inAxis
            inAxis += 1
            axes.append(axis)
            if bit(shrink, i) {
                b.append(begin[i]); e.append(begin[i] == -1 ? big : begin[i] + 1); steps.append(1)
                squeeze.append(axis)
                continue
            }
            let forward = strides[i] > 0
            b.append(bit(bm, i) ? (forward ? 0 : big) : begin[i])
            e.append(bit(em, i) ? (forward ? big : small) : end[i])
            steps.append(strides[i])
            outAxis += 1
        }
        var y = x
        if !axes.isEmpty {
            y = emit1("Slice", [y, int64s(b, name: base + "/begin"), int64s(e, name: base + "/end"),
                                int64s(axes, name: base + "/axes"), int64s(steps, name: base + "/steps")],
                      name: squeeze.isEmpty && unsqueeze.isEmpty ? base : base + "/slice")
        }
        if !squeeze.isEmpty {
            y = emit1("Squeeze", [y, int64s(squeeze, name: base + "/squeeze_axes")], name: unsqueeze.isEmpty ? base : base + "/squeezed")
        }
        if !unsqueeze.isEmpty {
            y = emit1("Unsqueeze", [y, int64s(unsqueeze, name: base + "/new_axes")], name: base)
        }
        if y == x { y = emit1("Identity", [x], name: base) }
        return y
    }
}
