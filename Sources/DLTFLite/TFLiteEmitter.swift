import DLGraph
import DLTensor

/// Builds the tensors, buffers and operators of one TFLite subgraph from an IR graph.
struct TFLiteEmitter {
    let graph: Graph
    let path: String
    let types: [String: TensorType]
    /// Constants: the initializers, and values computed from them by Transpose/Identity nodes.
    var constants: [String: Tensor] = [:]
    var tensors: [FlatObject] = []
    var buffers: [FlatObject] = [FlatObject([])]
    var tensorIndex: [String: Int] = [:]
    var opcodes: [Int32] = []
    var operators: [FlatObject] = []
    /// Values that are a transpose of another value: (source, permutation), to drop a transpose
    /// that undoes one.
    var transposes: [String: (String, [Int])] = [:]
    var aliases: [String: String] = [:]
    /// Values not written yet that equal a transpose of another tensor (source, permutation): the
    /// results of channels-last ops and of elementwise ops on them. A TRANSPOSE is written only
    /// when something needs the value itself; a transpose undoing it reads the source.
    var pending: [String: (String, [Int])] = [:]
    /// Types of the tensors the writer adds (transposed and padded values).
    var addedTypes: [String: TensorType] = [:]
    var names = UniqueNames()
    /// The node producing each value (by its first output).
    let producer: [String: Int]
    var quantize: TFLiteWriter.Quantize = .none

    init(graph: Graph, path: String) throws(TFLiteError) {
        self.graph = graph
        self.path = path
        var p: [String: Int] = [:]
        for (k, n) in graph.nodes.enumerated() { if let o = n.outputs.first, p[o] == nil { p[o] = k } }
        producer = p
        types = try Self.shapes(graph, path: path)
        for (n, t) in graph.initializers { constants[n] = t }
        names = UniqueNames(reserving: graph.nodes.flatMap(\.outputs) + graph.inputs.map(\.name) + graph.initializers.names)
    }

    /// The type of every value: the IR's inference, and for the ops it types only at run time
    /// (elementwise ops, Pad, Cast, Tile, Resize, ConvTranspose) the shape that follows from their
    /// inputs, so what comes after them is typed too. TFLite needs every tensor's shape in the file.
    static func shapes(_ graph: Graph, path: String) throws(TFLiteError) -> [String: TensorType] {
        var types: [String: TensorType] = [:]
        var values: [String: Tensor] = [:]
        for (name, t) in graph.initializers {
            types[name] = TensorType(dtype: t.dtype, shape: t.shape)
            values[name] = t
        }
        for v in graph.inputs { types[v.name] = v.type }
        let sameShape: Set<String> = ["Relu", "Sigmoid", "Tanh", "HardSwish", "Clip", "LeakyRelu", "Exp", "Log", "Sqrt", "Abs",
                                      "Neg", "Floor", "Ceil", "Sin", "Cos", "Elu", "Identity", "Dropout", "Softmax"]
        func known(_ dims: ArraySlice<Dim>) -> [Int]? {
            let v = dims.compactMap(\.value)
            return v.count == dims.count ? v : nil
        }
        for n in graph.nodes {
            let outs: [TensorType?]
            do { outs = try Graph.inferNode(n, types: types, values: values) } catch { throw .graph(path: path, error) }
            for (o, t) in zip(n.outputs, outs) where !o.isEmpty { if let t { types[o] = t } }
            guard OpSet.isDefaultDomain(n), let o = n.outputs.first, types[o]?.dims == nil,
                  let a = types[n.inputs.first ?? ""], let da = a.dims else { continue }
            if sameShape.contains(n.opType) {
                types[o] = a
            } else if ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"].contains(n.opType), n.inputs.count == 2,
                      let db = types[n.inputs[1]]?.dims, let d = try? Broadcast.dims(da, db) {
                types[o] = TensorType(dtype: a.dtype, dims: d)
            } else if ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"].contains(n.opType) {
                let r = da.count
                let axes = (n.input(1).flatMap { values[$0] }?.doubles().map { Int($0) } ?? Array(0..<r))
                    .map { $0 < 0 ? $0 + r : $0 }
                let keep = ((try? n.int("keepdims", default: 1)) ?? 1) != 0
                types[o] = TensorType(dtype: a.dtype, dims: da.enumerated().compactMap { i, d in
                    axes.contains(i) ? (keep ? .fixed(1) : nil) : d })
            } else if n.opType == "Pad", let p = n.input(1).flatMap({ values[$0] }), p.elementCount == 2 * da.count {
                let pads = p.doubles().map { Int($0) }
                types[o] = TensorType(dtype: a.dtype, dims: da.enumerated().map { i, d in
                    d.value.map { .fixed($0 + pads[i] + pads[da.count + i]) } ?? .unknown })
            } else if n.opType == "Cast", let to = try? n.int("to", default: 0), let dtype = DType(onnxCode: Int32(to)) {
                types[o] = TensorType(dtype: dtype, dims: da)
            } else if n.opType == "Tile", let reps = n.input(1).flatMap({ values[$0] })?.doubles(), reps.count == da.count {
                types[o] = TensorType(dtype: a.dtype, dims: zip(da, reps).map { d, r in d.value.map { .fixed($0 * Int(r)) } ?? .unknown })
            } else if n.opType == "Resize", let sizes = n.input(3).flatMap({ values[$0] })?.doubles().map({ Int($0) }) {
                // Sizes of every axis, or of the axes the `axes` attribute names.
                let axes = ((try? n.ints("axes")) ?? nil)?.map { $0 < 0 ? $0 + da.count : $0 } ?? Array(0..<da.count)
                guard axes.count == sizes.count, axes.allSatisfy({ $0 >= 0 && $0 < da.count }) else { continue }
                var dims = da
                for (axis, size) in zip(axes, sizes) { dims[axis] = .fixed(size) }
                types[o] = TensorType(dtype: a.dtype, dims: dims)
            } else if n.opType == "ConvTranspose", da.count >= 3, let w = types[n.input(1) ?? ""]?.dims, w.count == da.count,
                      let spatial = known(da[2...]), let kernel = known(w[2...]), let perGroup = w[1].value,
                      let g = try? WindowAttributes(node: n).transposedGeometry(input: spatial, kernel: kernel) {
                let group = (try? n.int("group", default: 1)) ?? 1
                types[o] = TensorType(dtype: a.dtype, dims: [da[0], .fixed(perGroup * group)] + g.output.map { .fixed($0) })
            }
        }
        return types
    }

    // MARK: tensors

    static func typeCode(_ d: DType) -> Int8? {
        switch d {
        case .float32: 0
        case .float16: 1
        case .int32: 2
        case .uint8: 3
        case .int64: 4
        case .bool: 6
        case .int16: 7
        case .int8: 9
        case .float64: 10
        default: nil
        }
    }

    mutating func fresh(_ base: String) -> String { names.make(base) }

    /// The TFLite tensor of an IR value (a constant gets a buffer).
    mutating func tensor(_ value: String) throws(TFLiteError) -> Int {
        let v = aliases[value] ?? value
        if let i = tensorIndex[v] { return i }
        if let (src, perm) = pending[v], let t = typeOf(v), let dims = t.dims {
            let o = try newTensor(v, dtype: t.dtype, dims: dims)
            op(39, [try tensor(src), try int32s(perm, base: v + "/perm")], [o])
            transposes[v] = (src, perm)
            return o
        }
        if let c = try constant(v) { return try constantTensor(c, name: v) }
        guard let t = typeOf(v), let dims = t.dims else {
            throw .write(path: path, reason: "value '\(v)' has no known type and shape")
        }
        return try newTensor(v, dtype: t.dtype, dims: dims)
    }

    func typeOf(_ v: String) -> TensorType? { types[v] ?? addedTypes[v] }

    mutating func newTensor(_ name: String, dtype: DType, dims: [Dim]) throws(TFLiteError) -> Int {
        if types[name] == nil { addedTypes[name] = TensorType(dtype: dtype, dims: dims) }
        guard let code = Self.typeCode(dtype) else { throw .write(path: path, reason: "value '\(name)' is \(dtype), which TFLite cannot hold") }
        let shape = dims.map { Int32($0.value ?? 1) }
        let signature = dims.map { Int32($0.value ?? -1) }
        tensors.append(FlatObject([
            (0, .int32s(shape)), (1, .int8(code)), (2, .uint32(0)), (3, .string(name)),
            (7, signature == shape ? nil : .int32s(signature)),
        ]))
        tensorIndex[name] = tensors.count - 1
        return tensors.count - 1
    }

    /// A weight tensor (filter or fully connected matrix) stored as `quantize` says; returns the
    /// tensor the operator reads. `axis` is the output-channel axis for per-channel int8 scales
    /// (nil: one scale for the tensor).
    mutating func weight(_ t: Tensor, base: String, axis: Int?) throws(TFLiteError) -> Int {
        switch quantize {
        case .none:
            return try constant(t, base: base)
        case .float16:
            let half = try constant(t.converted(to: .float16), base: base + "/float16")
            let out = fresh(base)
            let o = try newTensor(out, dtype: .float32, dims: [Dim](t.shape))
            op(6, [half], [o])
            return o
        case .dynamicInt8:
            let x = t.scalars(as: Float.self)
            let channels = axis.map { t.shape[$0] } ?? 1
            let inner = axis.map { t.shape[($0 + 1)...].reduce(1, *) } ?? x.count
            var scales = [Float](repeating: 0, count: channels)
            for (k, v) in x.enumerated() {
                let c = channels == 1 ? 0 : (k / inner) % channels
                scales[c] = max(scales[c], abs(v))
            }
            scales = scales.map { $0 > 0 ? $0 / 127 : 1 }
            let q = x.enumerated().map { k, v -> Int8 in
                let c = channels == 1 ? 0 : (k / inner) % channels
                return Int8(max(-127, min(127, (v / scales[c]).rounded())))
            }
            let i = try constant(Tensor(shape: t.shape, scalars: q), base: base + "/int8")
            tensors[i].fields.append((4, .table(FlatObject([
                (2, .floats(scales)), (3, .int64s([Int64](repeating: 0, count: channels))), (6, .int32(Int32(axis ?? 0))),
            ]))))
            return i
        }
    }

    mutating func constantTensor(_ t: Tensor, name: String) throws(TFLiteError) -> Int {
        guard let code = Self.typeCode(t.dtype) else { throw .write(path: path, reason: "constant '\(name)' is \(t.dtype), which TFLite cannot hold") }
        let data = t.withUnsafeBytes { [UInt8]($0) }
        buffers.append(FlatObject([(0, .bytes(data, alignment: 16))]))
        tensors.append(FlatObject([
            (0, .int32s(t.shape.map { Int32($0) })), (1, .int8(code)), (2, .uint32(UInt32(buffers.count - 1))), (3, .string(name)),
        ]))
        tensorIndex[name] = tensors.count - 1
        return tensors.count - 1
    }

    /// A new constant tensor (shapes, axes, permutations as int32, weights relaid out).
    mutating func constant(_ t: Tensor, base: String) throws(TFLiteError) -> Int {
        try constantTensor(t, name: fresh(base))
    }

    mutating func int32s(_ v: [Int], base: String) throws(TFLiteError) -> Int {
        try constant(Tensor(shape: [v.count], scalars: v.map { Int32(clamping: $0) }), base: base)
    }

    /// The value's tensor when it is known before running: an initializer, or a Transpose /
    /// Identity / Cast of one (as the TFLite reader and Keras importer write weights; float16
    /// weights behind DEQUANTIZE are read as a Cast).
    mutating func constant(_ v: String) throws(TFLiteError) -> Tensor? {
        if let c = constants[v] { return c }
        guard let k = producer[v] else { return nil }
        let node = graph.nodes[k]
        if node.opType == "Constant", OpSet.isDefaultDomain(node) {
            let c = try? ConstantOp.value(of: node)
            constants[v] = c
            return c
        }
        guard node.inputs.count == 1 else { return nil }
        switch node.opType {
        case "Identity":
            let c = try constant(node.inputs[0])
            constants[v] = c
            return c
        case "Cast":
            guard let src = try constant(node.inputs[0]), let to = try? node.int("to", default: 0), let dtype = DType(onnxCode: Int32(to)) else { return nil }
            let c = src.converted(to: dtype)
            constants[v] = c
            return c
        case "Transpose":
            guard let src = try constant(node.inputs[0]), let perm = (try? node.ints("perm")) ?? nil else { return nil }
            let c = try permute(src, perm, name: v)
            constants[v] = c
            return c
        default:
            return nil
        }
    }

    /// `t` with its axes reordered (`out.shape[i] = t.shape[perm[i]]`).
    func permute(_ t: Tensor, _ perm: [Int], name: String) throws(TFLiteError) -> Tensor {
        do { return try t.transposed(perm) } catch { throw .write(path: path, reason: "transpose of '\(name)' by \(perm): \(error)") }
    }

    // MARK: operators

    /// Adds an operator; `options` is the builtin options table with its union type.
    mutating func op(_ code: Int32, _ inputs: [Int], _ outputs: [Int], _ options: (UInt8, FlatObject)? = nil) {
        let index: Int
        if let i = opcodes.firstIndex(of: code) { index = i } else { opcodes.append(code); index = opcodes.count - 1 }
        operators.append(FlatObject([
            (0, .uint32(UInt32(index))), (1, .int32s(inputs.map { Int32($0) })), (2, .int32s(outputs.map { Int32($0) })),
            (3, options.map { .uint8($0.0) }), (4, options.map { .table($0.1) }),
        ]))
    }

    /// A TRANSPOSE of `value` by `perm` into a new tensor; the source when it undoes a transpose.
    mutating func transposed(_ value: String, _ perm: [Int]) throws(TFLiteError) -> String {
        let v = aliases[value] ?? value
        if let (src, p) = pending[v] ?? transposes[v], p.count == perm.count, (0..<perm.count).allSatisfy({ p[perm[$0]] == $0 }) { return src }
        guard let t = typeOf(v), let dims = t.dims, dims.count == perm.count else {
            throw .write(path: path, reason: "value '\(v)' needs a known rank \(perm.count) to be transposed")
        }
        let out = fresh(v + "/transposed")
        let o = try newTensor(out, dtype: t.dtype, dims: perm.map { dims[$0] })
        op(39, [try tensor(v), try int32s(perm, base: out + "/perm")], [o])
        transposes[out] = (v, perm)
        return out
    }

    func finish() -> [UInt8] {
        let inputs = graph.inputs.compactMap { tensorIndex[$0.name] }
        let outputs = graph.outputs.compactMap { tensorIndex[aliases[$0.name] ?? $0.name] }
        let maps = { (vs: [ValueInfo], idx: [Int]) -> [FlatObject] in
            zip(vs, idx).map { v, i in FlatObject([(0, .string(v.name)), (1, .uint32(UInt32(i)))]) }
        }
        let subgraph = FlatObject([
            (0, .tables(tensors)), (1, .int32s(inputs.map { Int32($0) })), (2, .int32s(outputs.map { Int32($0) })),
            (3, .tables(operators)), (4, .string(graph.name)),
        ])
        let signature = FlatObject([(0, .tables(maps(graph.inputs, inputs))), (1, .tables(maps(graph.outputs, outputs))),
                                    (2, .string("serving_default")), (4, .uint32(0))])
        let model = FlatObject([
            (0, .uint32(3)),
            (1, .tables(opcodes.map { FlatObject([(0, .int8(Int8(clamping: min($0, 127)))), (2, .int32(1)), (3, .int32($0))]) })),
            (2, .tables([subgraph])), (3, .string("dlkit")), (4, .tables(buffers)), (7, .tables([signature])),
        ])
        return FlatBufferBuilder.build(root: model, identifier: "TFL3")
    }
}
