import DLGraph
import DLTensor

/// TFLite's control flow: WHILE (WhileOptions: 0 cond_subgraph_index, 1 body_subgraph_index) as
/// the IR's Loop, IF (IfOptions: 0 then_subgraph_index, 1 else_subgraph_index) as the IR's If.
/// The subgraphs they name are translated like the main one, into nested graphs.
extension TFLiteGraphBuilder {
    static var controlFlowOps: [(String, TFLiteImporter.Translator)] {
        [
            ("WHILE", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.whileLoop(op) }),
            ("IF", { (b: inout TFLiteGraphBuilder, op: TFLiteOp) throws(TFLiteError) in try b.ifThenElse(op) }),
        ]
    }

    /// The two subgraph indices of a WHILE's or IF's options, checked.
    func subgraphIndices(_ op: TFLiteOp) throws(TFLiteError) -> (Int, Int) {
        guard let (a, b) = try options(op, { t throws(FlatBufferError) in (try t.scalar(0, Int32(0)), try t.scalar(1, Int32(0))) }) else {
            throw fail(op, "has no options naming its subgraphs")
        }
        for k in [a, b] where k <= 0 || Int(k) >= model.subgraphs.count {
            throw fail(op, "names subgraph \(k); the file has subgraphs 1..<\(model.subgraphs.count) besides the main one")
        }
        return (Int(a), Int(b))
    }

    /// WHILE: the condition runs on the initial values; the Loop's body runs the body subgraph,
    /// then the condition on its results. Every input is carried (TFLite passes invariants
    /// through the body unchanged).
    mutating func whileLoop(_ op: TFLiteOp) throws(TFLiteError) {
        let (condIndex, bodyIndex) = try subgraphIndices(op)
        let n = base(op)
        let initial = try op.op.inputs.indices.map { k throws(TFLiteError) in try raw(op, k) }
        try checkArity(op, condIndex, inputs: initial.count, outputs: 1)
        try checkArity(op, bodyIndex, inputs: initial.count, outputs: initial.count)
        guard op.op.outputs.count == initial.count else { throw fail(op, "has \(op.op.outputs.count) outputs for \(initial.count) loop values") }
        let first = try inline(subgraph: condIndex, inputs: initial, op: op)[0]
        let iter = uniqueName(n + "/iteration"), condIn = uniqueName(n + "/condition_in")
        let carried = initial.indices.map { uniqueName(n + "/value\($0)") }
        let bodySub = model.subgraphs[bodyIndex]
        var bodyInputs = [ValueInfo(name: iter, type: TensorType(dtype: .int64, shape: [])), ValueInfo(name: condIn, type: TensorType(dtype: .bool, shape: []))]
        for (k, name) in carried.enumerated() {
            // Element types only: a loop value's shape may change from one iteration to the next.
            let i = bodySub.inputs[k]
            let t = try Self.irType(bodySub.tensors[i], path: path, label: "subgraph \(bodyIndex) ('\(bodySub.name)') tensor \(i)")
            bodyInputs.append(ValueInfo(name: name, type: TensorType(dtype: t.dtype, dims: nil)))
        }
        let body = try nestedGraph(name: n + "/body", inputs: bodyInputs, op: op) { (b: inout TFLiteGraphBuilder) throws(TFLiteError) -> [String] in
            let next = try b.inline(subgraph: bodyIndex, inputs: carried, op: op)
            let again = try b.inline(subgraph: condIndex, inputs: next, op: op)[0]
            return [again] + next
        }
        let outs = op.op.outputs.indices.map { uniqueName(n + "/out\($0)") }
        nodes.append(Node(name: uniqueName(n + "/loop"), opType: "Loop", inputs: ["", first] + initial, outputs: outs,
                          attributes: [Attribute(name: "body", value: .graph(body))]))
        for (k, out) in outs.enumerated() { try bindStored(op, k, out) }
    }

    /// IF: input 0 the condition, the others handed to whichever branch runs; the branches see
    /// them as values of the enclosing graph.
    mutating func ifThenElse(_ op: TFLiteOp) throws(TFLiteError) {
        let (thenIndex, elseIndex) = try subgraphIndices(op)
        let n = base(op)
        let cond = try raw(op, 0)
        let args = try op.op.inputs.indices.dropFirst().map { k throws(TFLiteError) in try raw(op, k) }
        for k in [thenIndex, elseIndex] { try checkArity(op, k, inputs: args.count, outputs: op.op.outputs.count) }
        func branch(_ b: inout TFLiteGraphBuilder, _ index: Int) throws(TFLiteError) -> [String] { try b.inline(subgraph: index, inputs: args, op: op) }
        let thenGraph = try nestedGraph(name: n + "/then", inputs: [], op: op) { (b: inout TFLiteGraphBuilder) throws(TFLiteError) in try branch(&b, thenIndex) }
        let elseGraph = try nestedGraph(name: n + "/else", inputs: [], op: op) { (b: inout TFLiteGraphBuilder) throws(TFLiteError) in try branch(&b, elseIndex) }
        let outs = op.op.outputs.indices.map { uniqueName(n + "/out\($0)") }
        nodes.append(Node(name: uniqueName(n + "/if"), opType: "If", inputs: [cond], outputs: outs,
                          attributes: [Attribute(name: "then_branch", value: .graph(thenGraph)), Attribute(name: "else_branch", value: .graph(elseGraph))]))
        for (k, out) in outs.enumerated() { try bindStored(op, k, out) }
    }

    func checkArity(_ op: TFLiteOp, _ index: Int, inputs: Int, outputs: Int) throws(TFLiteError) {
        let s = model.subgraphs[index]
        guard s.inputs.count == inputs, s.outputs.count == outputs else {
            throw fail(op, "subgraph \(index) ('\(s.name)') takes \(s.inputs.count) inputs and gives \(s.outputs.count) outputs; the operator needs \(inputs) and \(outputs)")
        }
    }

    /// Binds output `k` to a value holding the tensor as stored (quantized tensors stay integers).
    mutating func bindStored(_ op: TFLiteOp, _ k: Int, _ v: String) throws(TFLiteError) {
        values[try output(op, k)] = v
    }

    /// Translates subgraph `index` into this builder's nodes with its inputs bound to `inputs`
    /// (values of this graph); returns the values of its outputs. Names stay unique across the
    /// whole graph; a subgraph that (through WHILE/IF) reaches itself is refused.
    mutating func inline(subgraph index: Int, inputs: [String], op: TFLiteOp) throws(TFLiteError) -> [String] {
        guard !active.contains(index) else { throw fail(op, "subgraph \(index) calls itself (through WHILE or IF)") }
        guard active.count < 64 else { throw fail(op, "nests control flow more than 64 deep") }
        let s = model.subgraphs[index]
        var b = TFLiteGraphBuilder(model: model, subgraph: s, index: index, used: used)
        b.active = active.union([index])
        b.translatedOps = translatedOps
        b.operatorBudget = operatorBudget
        b.allocationLeft = allocationLeft
        for (k, i) in s.inputs.enumerated() where k < inputs.count { b.values[i] = inputs[k] }
        try b.translateOperators()
        var outs: [String] = []
        for i in s.outputs { outs.append(try b.value(i, for: "subgraph \(index) ('\(s.name)') output")) }
        nodes += b.nodes
        initializers += b.initializers
        translatedOps = b.translatedOps
        allocationLeft = b.allocationLeft
        return outs
    }

    /// A graph for a Loop body or an If branch: `build` adds nodes to a fresh node list and
    /// returns the output values, which get names of their own (an output may be an input).
    mutating func nestedGraph(name: String, inputs: [ValueInfo], op: TFLiteOp,
                              _ build: (inout TFLiteGraphBuilder) throws(TFLiteError) -> [String]) throws(TFLiteError) -> Graph {
        let (savedNodes, savedInitializers) = (nodes, initializers)
        nodes = []
        initializers = []
        defer { (nodes, initializers) = (savedNodes, savedInitializers) }
        let values = try build(&self)
        var outputs: [ValueInfo] = []
        for v in values {
            let out = uniqueName(name + "/output")
            nodes.append(Node(name: out, opType: "Identity", inputs: [v], outputs: [out]))
            outputs.append(ValueInfo(name: out, type: nil))
        }
        return Graph(name: name, inputs: inputs, outputs: outputs, nodes: nodes, initializers: NamedTensors(initializers))
    }
}
