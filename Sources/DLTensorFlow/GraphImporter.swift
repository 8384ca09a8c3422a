import CTensorFlowProtos
import DLGraph
import DLTensor

/// A value flowing through a TensorFlow graph while it is translated: an IR tensor, or a
/// resource handle naming a variable (resolved to its checkpoint entry when it is known).
enum TFValue {
    case tensor(String)
    case resource(key: String?, name: String)
}

/// Where a graph or function body is being translated: its nodes, its arguments and the prefix
/// that keeps the IR names of inlined copies apart.
struct Scope {
    var prefix: String
    var nodes: [String: TFNode]
    var args: [String: TFValue]
    var isFunction: Bool
    var depth: Int
}

/// Translates one signature of a SavedModel into IR nodes.
struct GraphImporter {
    let path: String
    private(set) var model: SavedModelParts
    let bundle: TensorBundle?
    var nodes: [Node] = []
    var initializers = NamedTensors()
    /// IR values whose contents are known at import (constants and variables).
    var constants: [String: Tensor] = [:]
    /// Constants stored outside the graph, by Const node name (TF.js weights).
    var weightConstants: [String: Tensor] = [:]
    /// IR values that are sequences (TensorFlow tensor lists), with their element type.
    var sequences: [String: DType] = [:]
    /// `Op (node)` for each op without a translation, the first node naming it.
    var unsupported: [String: String] = [:]
    private var names: Set<String> = []
    private var variableValues: [String: String] = [:]
    private var checkpointKeys: [Int: String]? = nil
    private var graphInputs: [ValueInfo] = []
    /// The nodes of the graphs around the subgraph being built (If branches, Loop bodies).
    private var outerNodes: [Node] = []
    /// Types inferred over the nodes emitted so far (`staticType`), and how many nodes that was.
    private var inferred: (nodes: Int, types: [String: TensorType]) = (-1, [:])
    static let maxCallDepth = 64

    init(path: String, model: SavedModelParts, bundle: TensorBundle?) {
        self.path = path
        self.model = model
        self.bundle = bundle
    }

    // MARK: the signature

    mutating func build(signature key: String) throws(TensorFlowError) -> Graph {
        guard let sig = model.signatures[key] else { throw .signature(path: path, reason: "has no signature '\(key)'") }
        try TF1Loops.lift(&model, path: path)
        var args: [String: TFValue] = [:]
        var inputs: [ValueInfo] = []
        // The signature's keys name the graph's inputs and outputs; internal values avoid them.
        names.formUnion(sig.outputs.map(\.0))
        for (name, info) in sig.inputs {
            let node = Self.nodeName(info.name)
            args[node] = .tensor(name)
            names.insert(name)
            inputs.append(ValueInfo(name: name, type: try type(info, value: name)))
        }
        graphInputs = inputs
        var top: [String: TFNode] = [:]
        for n in model.nodes { top[n.name] = n }
        let scope = Scope(prefix: "", nodes: top, args: args, isFunction: false, depth: 0)
        let values = try evaluate(sig.outputs.map { $0.1.name }, in: scope)
        if !unsupported.isEmpty {
            throw .unsupportedOps(path: path, ops: unsupported.keys.sorted().map { "\($0) (\(unsupported[$0] ?? ""))" })
        }
        var outputs: [ValueInfo] = []
        for ((name, info), v) in zip(sig.outputs, values) {
            let t = try tensor(v, node: info.name)
            let out = sig.inputs.contains { $0.0 == name } ? fresh(name) : name
            nodes.append(Node(name: out, opType: "Identity", inputs: [t], outputs: [out]))
            outputs.append(ValueInfo(name: out, type: try type(info, value: out)))
        }
        // Constants that were read as attributes (axes, permutations) have no user left.
        var used = Set(outputs.map(\.name))
        Self.collectInputs(nodes, into: &used)
        var kept = NamedTensors()
        for (name, t) in initializers where used.contains(name) { kept[name] = t }
        var g = Graph(name: key, inputs: inputs, outputs: outputs, nodes: nodes, initializers: kept)
        g.metadata.producerName = "dlkit-tensorflow"
        g.metadata.opsetImports = [(domain: "", version: 21)]
        g.metadata.irVersion = 10
        return g
    }

    /// Every value read by `nodes` and by the subgraphs of their attributes.
    static func collectInputs(_ nodes: [Node], into used: inout Set<String>) {
        for n in nodes {
            used.formUnion(n.inputs)
            for a in n.attributes {
                if case .graph(let g) = a.value { collectInputs(g.nodes, into: &used) }
                if case .graphs(let gs) = a.value { for g in gs { collectInputs(g.nodes, into: &used) } }
            }
        }
    }

    private func type(_ info: SavedModelParts.TensorInfo, value: String) throws(TensorFlowError) -> TensorType {
        guard let dtype = TFDataType.dtype(info.dtype) else {
            throw .signature(path: path, reason: "signature value '\(value)' has \(TFDataType.name(info.dtype)), which DLKit does not hold")
        }
        return TensorType(dtype: dtype, dims: info.shape.map { dims in
            dims.enumerated().map { i, d in d >= 0 ? .fixed(d) : i == 0 ? .symbolic("batch") : .symbolic("\(value)_\(i)") }
        })
    }

    /// `node:0` -> `node`.
    static func nodeName(_ ref: String) -> String {
        guard let colon = ref.firstIndex(of: ":") else { return ref }
        return String(ref[..<colon])
    }

    // MARK: bodies

    /// A reference to a node output: the node, the output argument (function bodies) and index.
    private func parse(_ ref: String, in scope: Scope) -> (node: String, arg: String?, index: Int)? {
        let parts = ref.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if scope.args[ref] != nil { return nil }
        switch parts.count {
        case 1: return (parts[0], nil, 0)
        case 2: return Int(parts[1]).map { (parts[0], scope.isFunction ? "" : nil, $0) }
        case 3: return Int(parts[2]).map { (parts[0], parts[1], $0) }
        default: return (ref, nil, -1)
        }
    }

    /// Translates the nodes `refs` depend on, in dependency order, and returns their values.
    mutating func evaluate(_ refs: [String], in scope: Scope) throws(TensorFlowError) -> [TFValue] {
        // Post-order walk over data inputs, without recursion (graphs can be deep).
        var state: [String: Bool] = [:]   // false: on the stack, true: done
        var order: [TFNode] = []
        for ref in refs {
            guard let (root, _, _) = parse(ref, in: scope) else { continue }
            var stack: [(String, Int)] = [(root, 0)]
            while let (name, next) = stack.popLast() {
                if next == 0 {
                    if state[name] == true { continue }
                    guard scope.nodes[name] != nil else {
                        throw .badNode(path: path, node: scope.prefix + name, reason: "is used but not defined")
                    }
                    state[name] = false
                }
                guard let node = scope.nodes[name] else { continue }
                if next < node.inputs.count {
                    stack.append((name, next + 1))
                    guard let (dep, _, _) = parse(node.inputs[next], in: scope) else { continue }
                    if state[dep] == false {
                        throw .badNode(path: path, node: scope.prefix + name, reason: "is part of a cycle that is not a TF1 while_loop frame (Enter/Merge/Switch/NextIteration/Exit)")
                    }
                    if state[dep] == nil { stack.append((dep, 0)) }
                } else {
                    state[name] = true
                    order.append(node)
                }
            }
        }
        var env: [String: [TFValue]] = [:]
        for node in order {
            var inputs: [TFValue] = []
            for ref in node.inputs { inputs.append(try value(ref, env: env, scope: scope, user: node.name)) }
            // Past an untranslated op only the other unsupported ops are of interest: its users
            // are skipped (their outputs stay unknown) so every such op is listed at once.
            if inputs.contains(where: Self.isUnknown) {
                env[node.name] = []
                continue
            }
            env[node.name] = try translate(node, inputs, scope: scope)
        }
        var out: [TFValue] = []
        for ref in refs { out.append(try value(ref, env: env, scope: scope, user: "")) }
        return out
    }

    private func value(_ ref: String, env: [String: [TFValue]], scope: Scope, user: String) throws(TensorFlowError) -> TFValue {
        if let a = scope.args[ref] { return a }
        guard let (node, arg, index) = parse(ref, in: scope), index >= 0, let outs = env[node] else {
            throw .badNode(path: path, node: scope.prefix + (user.isEmpty ? ref : user), reason: "input '\(ref)' is malformed or not defined")
        }
        let op = scope.nodes[node]?.op ?? ""
        let at = (arg.map { Self.outputOffset(op: op, arg: $0) } ?? 0) + index
        if outs.isEmpty && !unsupported.isEmpty { return Self.unknown }
        guard at < outs.count else {
            throw .badNode(path: path, node: scope.prefix + node, reason: "has no output \(ref.dropFirst(node.count)) (it has \(outs.count))")
        }
        return outs[at]
    }

    /// The value of an output downstream of an untranslated op.
    static let unknown = TFValue.tensor("")
    static func isUnknown(_ v: TFValue) -> Bool { if case .tensor("") = v { return true } else { return false } }

    /// The first flat output index of output argument `arg` of `op` (ops with several output
    /// arguments; every other op's outputs are one argument).
    static func outputOffset(op: String, arg: String) -> Int {
        switch (op, arg) {
        case ("FusedBatchNorm", "batch_mean"), ("FusedBatchNormV2", "batch_mean"), ("FusedBatchNormV3", "batch_mean"): 1
        case ("FusedBatchNorm", "batch_variance"), ("FusedBatchNormV2", "batch_variance"), ("FusedBatchNormV3", "batch_variance"): 2
        case ("FusedBatchNorm", "reserve_space_1"), ("FusedBatchNormV2", "reserve_space_1"), ("FusedBatchNormV3", "reserve_space_1"): 3
        case ("FusedBatchNorm", "reserve_space_2"), ("FusedBatchNormV2", "reserve_space_2"), ("FusedBatchNormV3", "reserve_space_2"): 4
        case ("FusedBatchNormV3", "reserve_space_3"): 5
        case ("Unique", "idx"), ("TopKV2", "indices"): 1
        default: 0
        }
    }

    /// Inlines function `name` called by `node` with `inputs`.
    mutating func call(_ name: String, _ inputs: [TFValue], node: TFNode, scope: Scope) throws(TensorFlowError) -> [TFValue] {
        guard let fn = model.functions[name] else {
            throw .badNode(path: path, node: scope.prefix + node.name, reason: "calls function '\(name)', which the library does not define")
        }
        guard scope.depth < Self.maxCallDepth else {
            throw .badNode(path: path, node: scope.prefix + node.name, reason: "function calls nest more than \(Self.maxCallDepth) deep")
        }
        guard inputs.count == fn.inputArgs.count else {
            throw .badNode(path: path, node: scope.prefix + node.name, reason: "passes \(inputs.count) inputs to '\(name)', which takes \(fn.inputArgs.count)")
        }
        var args: [String: TFValue] = [:]
        let bound = model.boundInputs[name] ?? []
        let firstCaptured = inputs.count - bound.count
        for (i, (arg, v)) in zip(fn.inputArgs, inputs).enumerated() {
            // A captured variable handle: the object graph says which variable it is.
            if i >= firstCaptured, bound.count > 0, case .resource(nil, let handle) = v {
                let key = try checkpointKey(bound[i - firstCaptured], handle: handle, node: node, scope: scope)
                args[arg] = .resource(key: key, name: handle)
            } else {
                args[arg] = v
            }
        }
        var body: [String: TFNode] = [:]
        for n in fn.nodes { body[n.name] = n }
        let inner = Scope(prefix: scope.prefix + node.name + "/", nodes: body, args: args, isFunction: true, depth: scope.depth + 1)
        var refs: [String] = []
        for o in fn.outputArgs {
            guard let r = fn.ret[o] else {
                throw .badNode(path: path, node: scope.prefix + node.name, reason: "function '\(name)' does not return its output '\(o)'")
            }
            refs.append(r)
        }
        return try evaluate(refs, in: inner)
    }

    // MARK: variables

    /// The checkpoint key of object-graph node `id` (its `VARIABLE_VALUE` attribute).
    private mutating func checkpointKey(_ id: Int, handle: String, node: TFNode, scope: Scope) throws(TensorFlowError) -> String {
        if checkpointKeys == nil { checkpointKeys = try readObjectGraph() }
        guard let key = checkpointKeys?[id] else {
            throw .badNode(path: path, node: scope.prefix + node.name, reason: "captures variable '\(handle)' (object \(id)), which the checkpoint does not hold")
        }
        return key
    }

    private func readObjectGraph() throws(TensorFlowError) -> [Int: String] {
        guard let bundle, let e = bundle.entry(TensorBundle.objectGraphKey) else { return [:] }
        guard let bytes = try bundle.strings(e).first else { return [:] }
        let graph = bytes.withUnsafeBytes { unpack($0, tensorflow__trackable_object_graph__unpack) }
        guard let graph else {
            throw .badTensor(path: bundle.indexPath, tensor: TensorBundle.objectGraphKey, reason: "is not a valid TrackableObjectGraph")
        }
        defer { tensorflow__trackable_object_graph__free_unpacked(graph, nil) }
        var keys: [Int: String] = [:]
        for (i, n) in PB.messages(graph.pointee.nodes, graph.pointee.n_nodes).enumerated() {
            for a in PB.messages(n.pointee.attributes, n.pointee.n_attributes) where PB.string(a.pointee.name) == "VARIABLE_VALUE" {
                keys[i] = PB.string(a.pointee.checkpoint_key)
            }
        }
        return keys
    }

    /// The IR initializer holding checkpoint entry `key`, added on first use.
    mutating func variable(_ key: String, handle: String, node: String) throws(TensorFlowError) -> String {
        if let v = variableValues[key] { return v }
        guard let bundle else { throw .badNode(path: path, node: node, reason: "reads variable '\(handle)' but the SavedModel has no variables/ checkpoint") }
        let t: Tensor
        if let e = bundle.entry(key) {
            t = try bundle.tensor(e)
        } else if let p = try bundle.part(key) {
            t = p  // a TF1 partitioned variable's part: a slice of NAME's entry
        } else {
            throw .badNode(path: path, node: node, reason: "reads variable '\(handle)', whose checkpoint key '\(key)' is not in \(bundle.indexPath)")
        }
        let name = fresh(handle.isEmpty ? key : handle)
        names.insert(name)
        initializers[name] = t
        constants[name] = t
        variableValues[key] = name
        return name
    }

    /// The IR's type inference over the nodes emitted so far: what ops whose translation
    /// depends on a rank or a fixed size (transposed matmul operands, transposed convolutions)
    /// know of their inputs.
    mutating func staticType(_ value: String) -> TensorType? {
        if inferred.nodes != nodes.count {
            let partial = Graph(name: "partial", inputs: graphInputs, outputs: [], nodes: outerNodes + nodes, initializers: initializers)
            inferred = (nodes.count, (try? partial.inferTypes()) ?? [:])
        }
        return inferred.types[value]
    }

    /// Builds a subgraph (an If branch, a Loop body) from what `body` emits; its outputs are
    /// the values `body` returns, each through an Identity so the subgraph produces it.
    mutating func subgraph(name: String, inputs: [ValueInfo],
                           _ body: (inout GraphImporter) throws(TensorFlowError) -> [String]) throws(TensorFlowError) -> Graph {
        let saved = nodes
        outerNodes += saved
        nodes = []
        defer {
            nodes = saved
            outerNodes.removeLast(saved.count)
        }
        var outs: [ValueInfo] = []
        for v in try body(&self) {
            let o = fresh(name + "/out")
            nodes.append(Node(name: o, opType: "Identity", inputs: [v], outputs: [o]))
            outs.append(ValueInfo(name: o, type: nil))
        }
        return Graph(name: name, inputs: inputs, outputs: outs, nodes: nodes)
    }

    // MARK: emitting IR

    /// A value name not used yet, based on `base`.
    mutating func fresh(_ base: String) -> String {
        var n = base, k = 1
        while names.contains(n) { n = "\(base)_\(k)"; k += 1 }
        names.insert(n)
        return n
    }

    mutating func emit(_ op: String, _ inputs: [String], _ attrs: [Attribute] = [], outputs: Int = 1, name: String) -> [String] {
        let outs = (0..<outputs).map { fresh(outputs == 1 ? name : "\(name):\($0)") }
        nodes.append(Node(name: outs[0], opType: op, inputs: inputs, outputs: outs, attributes: attrs))
        return outs
    }

    mutating func emit1(_ op: String, _ inputs: [String], _ attrs: [Attribute] = [], name: String) -> String {
        emit(op, inputs, attrs, name: name)[0]
    }

    /// A constant initializer.
    mutating func constant(_ t: Tensor, name: String) -> String {
        let n = fresh(name)
        initializers[n] = t
        constants[n] = t
        return n
    }

    mutating func int64s(_ v: [Int], name: String) -> String {
        constant(Tensor(shape: [v.count], scalars: v.map { Int64($0) }), name: name)
    }

    func tensor(_ v: TFValue, node: String) throws(TensorFlowError) -> String {
        switch v {
        case .tensor(let t): return t
        case .resource(_, let h): throw .badNode(path: path, node: node, reason: "uses the variable handle '\(h)' as a tensor")
        }
    }
}
