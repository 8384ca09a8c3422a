import DLGraph
import DLTensor

/// Translates a `.tflite` model's main subgraph into the IR.
///
/// The file's layout is kept: NHWC values stay NHWC at the interface and between ops; ops the IR
/// defines channels-first (Conv, the poolings, DepthToSpace) get a Transpose on each side, which
/// the runtime's passes cancel between neighbours. Weights stay in the file (initializers are
/// views of the mapped buffers) and keep TFLite's layout; their reordering is a Transpose node the
/// plan folds once. Value names are the tensors' names, the graph's inputs and outputs take the
/// `serving_default` signature's names when the file has one.
///
/// Quantized tensors (int8/uint8/int16 with a scale, int32 biases) are read through
/// `DequantizeLinear` and ops whose output is quantized end in `QuantizeLinear`. Full-integer
/// models follow TFLite's integer arithmetic where it decides the result (convolutions, fully
/// connected, add, mul, requantize, mean, average pool: `Ops/IntegerOps.swift`; the 8-bit activations:
/// `Ops/IntegerActivations.swift`) and compute in
/// float between the quantize steps elsewhere; dynamic-range convolutions and fully connected
/// quantize their input as TFLite's hybrid kernels do, other ops dequantize their weights once
/// (folded by the plan); float16 weights behind DEQUANTIZE become a Cast.
public enum TFLiteImporter {
    /// The operators an import translates at most by default (WHILE and IF bodies counted each
    /// time they are inlined).
    public static let defaultOperatorBudget = 1 << 16

    /// - Parameters:
    ///   - allocationBudget: the most bytes the import may allocate for weights it has to
    ///     materialize (sparse tensors densified); the other weights stay views of the file.
    ///   - operatorBudget: the most operators translated, subgraphs counted each time WHILE or IF
    ///     inline them (the fuzz target holds it lower: 65536 took 18 s of its instrumented build
    ///     on one 4 KB input).
    /// - Throws: `TFLiteError` naming the tensor or operator at fault; unsupported operators are
    ///   listed all at once (custom ops by their custom code).
    public static func graph(from model: TFLiteModel, allocationBudget: Int = Graph.defaultAllocationBudget,
                             operatorBudget: Int = defaultOperatorBudget) throws(TFLiteError) -> Graph {
        guard let main = model.subgraphs.first else {
            throw .invalid(path: model.path, object: "model", reason: "has no subgraphs")
        }
        for k in reachableSubgraphs(model) { try checkDenseSizes(model, model.subgraphs[k], budget: allocationBudget) }
        var unsupported: [String: Int] = [:]
        for op in reachableSubgraphs(model).flatMap({ model.subgraphs[$0].operators }) {
            let name = TFLiteOps.name(model.operatorCodes[op.opcodeIndex])
            if translators[name] == nil { unsupported[name, default: 0] += 1 }
        }
        guard unsupported.isEmpty else {
            throw .unsupportedOps(path: model.path, ops: unsupported.sorted { $0.key < $1.key }.map { $0.value > 1 ? "\($0.key) (x\($0.value))" : $0.key })
        }
        var b = TFLiteGraphBuilder(model: model, subgraph: main, index: 0, used: UniqueNames())
        b.operatorBudget = operatorBudget
        b.allocationLeft = allocationBudget
        return try b.build()
    }

    /// The main subgraph and those its WHILE and IF operators name, directly or through others
    /// (indices out of range are left to the translation, which names the operator).
    static func reachableSubgraphs(_ model: TFLiteModel) -> [Int] {
        var seen: Set<Int> = [0], order = [0], k = 0
        while k < order.count {
            for op in model.subgraphs[order[k]].operators where ["WHILE", "IF"].contains(TFLiteOps.name(model.operatorCodes[op.opcodeIndex])) {
                for id in [0, 1] {
                    guard let v = try? op.options?.scalar(id, Int32(0)), v > 0, Int(v) < model.subgraphs.count, seen.insert(Int(v)).inserted else { continue }
                    order.append(Int(v))
                }
            }
            k += 1
        }
        return order
    }

    /// Refuses, before anything is allocated, a subgraph whose sparse constants would densify to
    /// more than `budget` bytes together (a few stored values can describe a huge dense shape).
    static func checkDenseSizes(_ model: TFLiteModel, _ sub: TFLiteModel.Subgraph, budget: Int) throws(TFLiteError) {
        var total = 0
        for (i, t) in sub.tensors.enumerated() where t.sparsity != nil {
            let width = dtype(t.type)?.byteWidth ?? 1
            let bytes = ShapeMath.elementCount(t.shape).map { $0.multipliedReportingOverflow(by: max(width, 1)) }
            guard let (b, o) = bytes, !o, b <= budget - total else {
                throw .invalid(path: model.path, object: "tensor \(i) ('\(t.name)')",
                               reason: "sparse shape \(t.shape) densifies past the allocation budget of \(budget) bytes (\(total) bytes densified before it)")
            }
            total += b
        }
    }

    typealias Translator = (inout TFLiteGraphBuilder, TFLiteOp) throws(TFLiteError) -> Void

    /// One translator per TFLite operator name; registered once each (a duplicate traps at start-up).
    // Immutable once built; the closures capture only constants.
    nonisolated(unsafe) static let translators: [String: Translator] = {
        var t: [String: Translator] = [:]
        for (name, f) in TFLiteGraphBuilder.convolutionOps + TFLiteGraphBuilder.elementwiseOps
            + TFLiteGraphBuilder.shapeOps + TFLiteGraphBuilder.otherOps + TFLiteGraphBuilder.controlFlowOps {
            precondition(t[name] == nil, "TFLite translator \(name) registered twice")
            t[name] = f
        }
        return t
    }()

    /// The IR element type of a TFLite `TensorType` code, nil for types DLKit does not hold
    /// (complex, resource, variant, packed int4).
    static func dtype(_ code: Int8) -> DType? {
        switch code {
        case 0: .float32
        case 1: .float16
        case 2: .int32
        case 3: .uint8
        case 4: .int64
        case 5: .string
        case 6: .bool
        case 7: .int16
        case 9: .int8
        case 10: .float64
        case 12: .uint64
        case 15: .uint32
        case 16: .uint16
        case 18: .bfloat16
        default: nil
        }
    }
}

/// One operator being translated: where it is, for messages and option reads.
struct TFLiteOp {
    let index: Int
    let op: TFLiteModel.Operator
    let name: String

    var options: FlatTable? { op.options }
}

/// Builds the IR graph of one subgraph, operator by operator.
struct TFLiteGraphBuilder {
    let model: TFLiteModel
    let sub: TFLiteModel.Subgraph
    var path: String { model.path }
    var nodes: [Node] = []
    var initializers: [(String, Tensor)] = []
    /// Value names taken so far (tensor names, fresh intermediate names).
    let used: UniqueNames
    /// The unique value name of each tensor (signature names for the graph's inputs and outputs).
    var tensorNames: [String] = []
    /// The value holding each tensor's stored content, once produced (or read from a buffer).
    var values: [Int: String] = [:]
    /// Float views of quantized tensors, made once.
    var floatViews: [Int: String] = [:]
    /// The scale and zero-point initializers of quantized tensors, made once.
    var quantNames: [Int: (String, String, Int?)] = [:]
    /// The subgraphs being translated (this one and those whose WHILE/IF led here).
    var active: Set<Int>
    /// Operators translated so far in the whole import, subgraphs counted each time they are
    /// inlined (a chain of WHILEs naming one subgraph twice each would otherwise double per level).
    var translatedOps = 0
    /// How many `translatedOps` may reach (`TFLiteImporter.graph`'s `operatorBudget`).
    var operatorBudget = TFLiteImporter.defaultOperatorBudget
    /// Bytes the translation may still allocate for constants it makes from shapes in the file
    /// (`zeros`), in the whole import: `TFLiteImporter.graph`'s `allocationBudget` (densified
    /// sparse tensors are checked against that budget on their own, before translating).
    var allocationLeft = Graph.defaultAllocationBudget

    /// A builder for subgraph `index` (0 the main one, whose tensors may take the signature's
    /// names), making names unique in `used` (shared by every subgraph's builder).
    init(model: TFLiteModel, subgraph: TFLiteModel.Subgraph, index: Int, used: UniqueNames) {
        self.model = model
        self.sub = subgraph
        self.used = used
        self.active = [index]
        var signatureNames: [Int: String] = [:]
        if index == 0, let sig = model.signatures.first(where: { $0.key == "serving_default" && $0.subgraph == 0 }) ?? model.signatures.first(where: { $0.subgraph == 0 }) {
            for m in sig.inputs + sig.outputs where !m.name.isEmpty { signatureNames[m.tensor] = m.name }
        }
        // Signature names first (a name given to two tensors keeps only its first), then the
        // tensors' own names made unique.
        for (i, name) in signatureNames.sorted(by: { $0.key < $1.key }) {
            if !self.used.reserve(name) { signatureNames[i] = nil }
        }
        var names: [String] = []
        for (i, t) in subgraph.tensors.enumerated() {
            names.append(signatureNames[i] ?? uniqueName(t.name.isEmpty ? "tensor_\(i)" : t.name))
        }
        tensorNames = names
    }

    mutating func uniqueName(_ base: String) -> String { used.make(base) }

    // MARK: graph

    mutating func build() throws(TFLiteError) -> Graph {
        var inputs: [ValueInfo] = []
        for i in sub.inputs {
            values[i] = tensorNames[i]
            inputs.append(ValueInfo(name: tensorNames[i], type: try type(of: i)))
        }
        try translateOperators()
        var outputs: [ValueInfo] = []
        for i in sub.outputs {
            let v = try value(i, for: "graph output")
            if v != tensorNames[i] {
                nodes.append(Node(name: tensorNames[i], opType: "Identity", inputs: [v], outputs: [tensorNames[i]]))
            }
            outputs.append(ValueInfo(name: tensorNames[i], type: try type(of: i)))
        }
        // Only the constants some node reads (an integer path takes a scale or a zero point alone).
        let read = Set(nodes.flatMap(\.inputs)).union(outputs.map(\.name))
        var g = Graph(name: sub.name.isEmpty ? "main" : sub.name, inputs: inputs, outputs: outputs, nodes: nodes,
                      initializers: NamedTensors(initializers.filter { read.contains($0.0) }))
        g.metadata.producerName = "dlkit-tflite"
        g.metadata.docString = model.description
        g.metadata.opsetImports = [(domain: "", version: 21)]
        g.metadata.metadataProps = [("tflite.schema_version", "\(model.version)")]
        return g
    }

    mutating func translateOperators() throws(TFLiteError) {
        for (k, op) in sub.operators.enumerated() {
            let name = TFLiteOps.name(model.operatorCodes[op.opcodeIndex])
            translatedOps += 1
            guard translatedOps <= operatorBudget else {
                throw .invalid(path: path, object: "model", reason: "control flow inlines more than \(operatorBudget) operators")
            }
            guard let translate = TFLiteImporter.translators[name] else { continue }
            try translate(&self, TFLiteOp(index: k, op: op, name: name))
        }
    }

    func fail(_ op: TFLiteOp, _ reason: String) -> TFLiteError {
        let out = op.op.outputs.first.flatMap { $0 >= 0 && $0 < tensorNames.count ? " -> '\(tensorNames[$0])'" : nil } ?? ""
        return .invalid(path: path, object: "operator \(op.index) (\(op.name)\(out))", reason: reason)
    }

    func tensorLabel(_ i: Int) -> String { "tensor \(i) ('\(sub.tensors[i].name)')" }

    /// The IR type of a tensor: its dtype and shape, -1 entries of the shape signature as unknown
    /// (the first one named `batch`).
    func type(of i: Int) throws(TFLiteError) -> TensorType {
        try Self.irType(sub.tensors[i], path: path, label: tensorLabel(i))
    }

    static func irType(_ t: TFLiteModel.TensorInfo, path: String, label: String) throws(TFLiteError) -> TensorType {
        guard let dt = TFLiteImporter.dtype(t.type) else {
            throw .invalid(path: path, object: label, reason: "TFLite tensor type \(t.type) is not supported")
        }
        var dims = [Dim](t.shape)
        if let sig = t.shapeSignature, sig.count == dims.count {
            for (k, s) in sig.enumerated() where s < 0 { dims[k] = k == 0 ? .symbolic("batch") : .unknown }
        }
        return TensorType(dtype: dt, dims: dims)
    }

    /// The shape stored in the file (a -1 in the signature shows as the size TFLite planned, often 1).
    func shape(_ i: Int) -> [Int] { sub.tensors[i].shape }

    // MARK: inputs and outputs of an operator

    /// The tensor index of input `k`, which must be present.
    func tensor(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> Int {
        guard k < op.op.inputs.count, op.op.inputs[k] >= 0 else { throw fail(op, "input \(k) is missing") }
        return op.op.inputs[k]
    }

    func hasInput(_ op: TFLiteOp, _ k: Int) -> Bool { k < op.op.inputs.count && op.op.inputs[k] >= 0 }

    /// The value of tensor `i` as stored (a constant becomes an initializer viewing the file).
    mutating func value(_ i: Int, for what: String) throws(TFLiteError) -> String {
        if let v = values[i] { return v }
        guard let c = try constant(i) else {
            throw .invalid(path: path, object: tensorLabel(i), reason: "is read by \(what) but no operator produces it and it has no data")
        }
        initializers.append((tensorNames[i], c))
        values[i] = tensorNames[i]
        return tensorNames[i]
    }

    /// The stored value of input `k`.
    mutating func raw(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> String {
        try value(try tensor(op, k), for: "operator \(op.index) (\(op.name))")
    }

    /// Input `k` as real numbers: quantized tensors go through DequantizeLinear (once per tensor).
    mutating func input(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> String {
        let i = try tensor(op, k)
        let v = try value(i, for: "operator \(op.index) (\(op.name))")
        guard let q = quantization(i) else { return v }
        if let f = floatViews[i] { return f }
        let (scale, zp, axis) = try quantParams(i, q)
        let f = emit("DequantizeLinear", [v, scale, zp], axis.map { [Attribute(name: "axis", value: .int($0))] } ?? [], base: tensorNames[i] + "/dequantized")
        floatViews[i] = f
        return f
    }

    /// The quantization of a tensor held as integers (nil for float tensors and plain integers).
    func quantization(_ i: Int) -> TFLiteModel.Quantization? {
        let t = sub.tensors[i]
        guard let q = t.quantization, [9, 3, 7, 2].contains(t.type) else { return nil }
        return q
    }

    /// Scale and zero-point initializers of a quantized tensor (made once per tensor), and the
    /// axis when per-channel.
    mutating func quantParams(_ i: Int, _ q: TFLiteModel.Quantization) throws(TFLiteError) -> (String, String, Int?) {
        if let made = quantNames[i] { return made }
        let t = sub.tensors[i]
        guard let dt = TFLiteImporter.dtype(t.type) else { throw .invalid(path: path, object: tensorLabel(i), reason: "unsupported quantized type") }
        let n = q.scale.count
        guard q.zeroPoint.isEmpty || q.zeroPoint.count == n else {
            throw .invalid(path: path, object: tensorLabel(i), reason: "has \(n) scales but \(q.zeroPoint.count) zero points")
        }
        let zps = q.zeroPoint.isEmpty ? [Int64](repeating: 0, count: n) : q.zeroPoint
        var axis: Int?
        if n > 1 {
            guard q.dimension >= 0, q.dimension < t.shape.count, t.shape[q.dimension] == n else {
                throw .invalid(path: path, object: tensorLabel(i), reason: "has \(n) scales for quantized dimension \(q.dimension) of shape \(t.shape)")
            }
            axis = q.dimension
        }
        let shape = n > 1 ? [n] : []
        let scale = addConstant(Tensor(shape: shape, scalars: n > 1 ? q.scale : [q.scale[0]]), base: tensorNames[i] + "/scale")
        let zpTensor: Tensor
        switch dt {
        case .int8: zpTensor = Tensor(shape: shape, scalars: zps.prefix(max(n, 1)).map { Int8(clamping: $0) })
        case .uint8: zpTensor = Tensor(shape: shape, scalars: zps.prefix(max(n, 1)).map { UInt8(clamping: $0) })
        case .int16: zpTensor = Tensor(shape: shape, scalars: zps.prefix(max(n, 1)).map { Int16(clamping: $0) })
        default: zpTensor = Tensor(shape: shape, scalars: zps.prefix(max(n, 1)).map { Int32(clamping: $0) })
        }
        let zp = addConstant(zpTensor, base: tensorNames[i] + "/zero_point")
        quantNames[i] = (scale, zp, axis)
        return (scale, zp, axis)
    }

    /// Binds output `k` of the operator to `v` (a real-valued result when the output is quantized:
    /// then QuantizeLinear to the output's scale and zero point first).
    mutating func bind(_ op: TFLiteOp, _ k: Int, _ v: String) throws(TFLiteError) {
        guard k < op.op.outputs.count, op.op.outputs[k] >= 0 else { throw fail(op, "output \(k) is missing") }
        let i = op.op.outputs[k]
        guard let q = quantization(i), sub.tensors[i].type != 2 else {
            values[i] = v
            return
        }
        let (scale, zp, axis) = try quantParams(i, q)
        values[i] = emit("QuantizeLinear", [v, scale, zp], axis.map { [Attribute(name: "axis", value: .int($0))] } ?? [], base: tensorNames[i])
        floatViews[i] = v
    }

    /// The output tensor index `k`.
    func output(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> Int {
        guard k < op.op.outputs.count, op.op.outputs[k] >= 0 else { throw fail(op, "output \(k) is missing") }
        return op.op.outputs[k]
    }

    // MARK: constants

    /// The data of a constant tensor as a tensor viewing the file, or nil when it has none.
    func constant(_ i: Int) throws(TFLiteError) -> Tensor? {
        let t = sub.tensors[i]
        let range = model.buffers[t.buffer]
        guard t.buffer > 0, !range.isEmpty else { return nil }
        guard let dt = TFLiteImporter.dtype(t.type), dt != .string else {
            throw .invalid(path: path, object: tensorLabel(i), reason: "constant of TFLite type \(t.type) is not supported")
        }
        if let sp = t.sparsity {
            let label = tensorLabel(i)
            return try SparseTensor.densify(sp, shape: t.shape, dtype: dt, values: model.bytes(range)) { reason in
                .invalid(path: path, object: label, reason: reason)
            }
        }
        guard let n = ShapeMath.elementCount(t.shape), n.multipliedReportingOverflow(by: dt.byteWidth) == (range.count, false) else {
            throw .invalid(path: path, object: tensorLabel(i),
                           reason: "shape \(t.shape) of \(dt) needs \(ShapeMath.elementCount(t.shape).map { "\($0 * dt.byteWidth)" } ?? "too many") bytes but its buffer \(t.buffer) holds \(range.count)")
        }
        do { return try Tensor(dtype: dt, shape: t.shape, viewing: model.file, offset: range.lowerBound) } catch {
            throw .invalid(path: path, object: tensorLabel(i), reason: "\(error)")
        }
    }

    /// The integer values of a constant input (shapes, axes, paddings, permutations).
    func constantInts(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> [Int] {
        let i = try tensor(op, k)
        guard let c = try constant(i) else { throw fail(op, "input \(k) \(tensorLabel(i)) must be a constant (computed at run time is not supported)") }
        switch c.dtype {
        case .int32: return c.scalars(as: Int32.self).map(Int.init)
        case .int64: return c.scalars(as: Int64.self).map(Int.init)
        default: throw fail(op, "input \(k) \(tensorLabel(i)) is \(c.dtype), expected int32 or int64")
        }
    }

    mutating func addConstant(_ t: Tensor, base: String) -> String {
        let n = uniqueName(base)
        initializers.append((n, t))
        return n
    }

    /// A float32 constant of zeros of `shape` (taken from the file: a bias or initial state the
    /// operator leaves out), charged to the allocation budget: a crafted shape must not make the
    /// import allocate gigabytes (a fuzzed LSTM asked for 3.6 GB of initial state).
    mutating func zeros(_ shape: [Int], for op: TFLiteOp, base: String) throws(TFLiteError) -> String {
        var bytes = 4, overflow = false
        for d in shape where !overflow {
            guard d >= 0 else { throw fail(op, "a constant of negative size \(shape) would be made") }
            (bytes, overflow) = bytes.multipliedReportingOverflow(by: d)
        }
        guard !overflow, bytes <= allocationLeft else {
            throw fail(op, "its zero \(base.split(separator: "/").last.map(String.init) ?? "constant") of shape \(shape) is over the import's allocation budget (\(allocationLeft) bytes left)")
        }
        allocationLeft -= bytes
        return addConstant(Tensor(zeros: .float32, shape: shape), base: base)
    }

    mutating func int64s(_ v: [Int], base: String) -> String {
        addConstant(Tensor(shape: [v.count], scalars: v.map { Int64($0) }), base: base)
    }

    mutating func scalar(_ v: Float, base: String) -> String {
        addConstant(Tensor(shape: [], scalars: [v]), base: base)
    }

    // MARK: nodes

    /// Adds a node with one output named after `base` and returns that name.
    @discardableResult
    mutating func emit(_ opType: String, _ inputs: [String], _ attrs: [Attribute] = [], base: String) -> String {
        let out = uniqueName(base)
        nodes.append(Node(name: out, opType: opType, inputs: inputs, outputs: [out], attributes: attrs))
        return out
    }

    /// A base name for the values an operator makes: its first output tensor's name.
    func base(_ op: TFLiteOp) -> String {
        guard let o = op.op.outputs.first, o >= 0 else { return "op\(op.index)" }
        return tensorNames[o]
    }

    mutating func transpose(_ x: String, _ perm: [Int], base: String) -> String {
        emit("Transpose", [x], [Attribute(name: "perm", value: .ints(perm))], base: base)
    }

    /// Applies a TFLite fused activation (`ActivationFunctionType`: 0 none, 1 relu, 2 relu_n1_to_1,
    /// 3 relu6, 4 tanh, 5 sign_bit).
    mutating func activation(_ op: TFLiteOp, _ x: String, optionId: Int) throws(TFLiteError) -> String {
        let code = try options(op) { t throws(FlatBufferError) in try t.scalar(optionId, Int8(0)) } ?? 0
        return try activation(op, x, code: code)
    }

    mutating func activation(_ op: TFLiteOp, _ x: String, code: Int8) throws(TFLiteError) -> String {
        let b = base(op) + "/act"
        switch code {
        case 0: return x
        case 1: return emit("Relu", [x], base: b)
        case 2: return emit("Clip", [x, scalar(-1, base: b + "/min"), scalar(1, base: b + "/max")], base: b)
        case 3: return emit("Clip", [x, scalar(0, base: b + "/min"), scalar(6, base: b + "/max")], base: b)
        case 4: return emit("Tanh", [x], base: b)
        default: throw fail(op, "fused activation \(code) is not supported")
        }
    }

    /// Reads the operator's builtin options; nil when the operator has none (then defaults apply).
    func options<T>(_ op: TFLiteOp, _ read: (FlatTable) throws(FlatBufferError) -> T) throws(TFLiteError) -> T? {
        guard let t = op.options else { return nil }
        do { return try read(t) } catch { throw .malformed(path: path, error) }
    }
}
