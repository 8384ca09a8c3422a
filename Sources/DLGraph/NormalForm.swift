import DLTensor

/// The one form the IR holds each op in, where ONNX opsets turned attributes into inputs: Clip's
/// bounds (opset 11), Pad's pads and value (11), Slice's starts/ends/axes (10), TopK's k (10),
/// Split's split (13), Squeeze's and Unsqueeze's axes (13), ReduceSum's axes (13) and the other
/// reductions' axes (18). The IR always has the input form, whatever opset a graph was read at:
/// the ONNX reader, the executor and the differentiator call ``normalise(_:)``, and the ONNX writer calls ``writtenForm(_:opset:)`` to go back
/// to the attributes for an older target opset. Shape inference, kernels, gradient rules, passes
/// and the other formats' writers read only the inputs.
///
/// Ops whose meaning changed in other ways keep their own rules: pre-13 Softmax is rewritten on
/// read (`DLONNX`); Resize-10 (told by its two inputs) and Scan-8 (by the graph's opset) keep
/// their forms in their kernels.
package enum NormalForm {
    /// How a moved attribute is typed as an input.
    package enum Kind: Sendable {
        /// An int64 vector (axes, pads, split, starts, ends).
        case int64s
        /// An int64 vector of one element (TopK's k).
        case int64One
        /// A scalar of input 0's element type (Clip's min/max, Pad's value: float attributes).
        case scalarOfInput
    }

    /// One attribute that is input `index` from opset `since` on.
    package struct Move: Sendable {
        package let attribute: String
        package let index: Int
        package let kind: Kind
        package let since: Int
    }

    /// Op type → its moved attributes, in input order.
    package static let moves: [String: [Move]] = {
        var t: [String: [Move]] = [
            "Clip": [Move(attribute: "min", index: 1, kind: .scalarOfInput, since: 11),
                     Move(attribute: "max", index: 2, kind: .scalarOfInput, since: 11)],
            "Pad": [Move(attribute: "pads", index: 1, kind: .int64s, since: 11),
                    Move(attribute: "value", index: 2, kind: .scalarOfInput, since: 11)],
            "Slice": [Move(attribute: "starts", index: 1, kind: .int64s, since: 10),
                      Move(attribute: "ends", index: 2, kind: .int64s, since: 10),
                      Move(attribute: "axes", index: 3, kind: .int64s, since: 10)],
            "TopK": [Move(attribute: "k", index: 1, kind: .int64One, since: 10)],
            "Split": [Move(attribute: "split", index: 1, kind: .int64s, since: 13)],
        ]
        for op in ["Squeeze", "Unsqueeze", "ReduceSum"] {
            t[op] = [Move(attribute: "axes", index: 1, kind: .int64s, since: 13)]
        }
        for op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                   "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"] {
            t[op] = [Move(attribute: "axes", index: 1, kind: .int64s, since: 18)]
        }
        return t
    }()

    /// The moved attributes of `node`, when it is an ai.onnx op that has some.
    package static func moves(of node: Node) -> [Move]? {
        OpSet.isDefaultDomain(node) ? moves[node.opType] : nil
    }

    /// Moves every attribute of the table into its input, in `graph` and its subgraphs. Each new
    /// input is a `Constant` node just before its reader, named after the reader's first output
    /// (a node, not an initializer: it is no weight, and a state dict does not list it). A graph
    /// already in the IR's form is left as it is. A float bound of a node whose input type
    /// inference cannot tell is stored as float32 (the type the older Clip and Pad forms were
    /// used with in practice).
    package static func normalise(_ graph: inout Graph) {
        guard needsWork(graph) else { return }
        let types = (try? graph.inferTypes()) ?? [:]
        var names = Set(graph.nodes.flatMap { $0.inputs + $0.outputs + [$0.name] }).union(graph.initializers.names)
            .union(graph.inputs.map(\.name))
        var nodes: [Node] = []
        nodes.reserveCapacity(graph.nodes.count)
        for var node in graph.nodes {
            node.rewriteSubgraphs { normalise(&$0) }
            guard let list = moves(of: node) else {
                nodes.append(node)
                continue
            }
            let dtype = types[node.input(0) ?? ""]?.dtype ?? .float32
            for m in list {
                guard let value = node.attribute(m.attribute), node.input(m.index) == nil,
                      let t = tensor(value, m.kind, dtype: dtype) else { continue }
                let base = "\(node.outputs.first ?? node.opType)_\(m.attribute)"
                var name = base, k = 0
                while names.contains(name) { k += 1; name = "\(base)_\(k)" }
                names.insert(name)
                nodes.append(Node(name: name, opType: "Constant", inputs: [], outputs: [name],
                                  attributes: [Attribute(name: "value", value: .tensor(t))]))
                node.attributes.removeAll { $0.name == m.attribute }
                while node.inputs.count <= m.index { node.inputs.append("") }
                node.inputs[m.index] = name
            }
            nodes.append(node)
        }
        graph.nodes = nodes
    }

    /// True when a node of `graph` or of its subgraphs holds a moved attribute.
    static func needsWork(_ graph: Graph) -> Bool {
        graph.nodes.contains { n in
            if let list = moves(of: n), list.contains(where: { n.attribute($0.attribute) != nil }) { return true }
            return n.subgraphs.contains { needsWork($0.graph) }
        }
    }

    static func tensor(_ value: AttributeValue, _ kind: Kind, dtype: DType) -> Tensor? {
        switch (kind, value) {
        case (.int64s, .ints(let xs)): Tensor(shape: [xs.count], scalars: xs.map { Int64($0) })
        case (.int64One, .int(let k)): Tensor(shape: [1], scalars: [Int64(k)])
        case (.scalarOfInput, .float(let f)): Tensor(scalar: f).converted(to: dtype)
        default: nil
        }
    }

    /// `graph` with each moved input turned back into its attribute where `opset` is older than
    /// the input form, for writing. An input must be a constant of this graph (an initializer or
    /// a Constant's output) to move; the Constant nodes and initializers nothing else reads
    /// afterwards are dropped.
    /// Subgraphs follow the same opset.
    package static func writtenForm(_ graph: Graph, opset: Int) -> Graph {
        guard graph.nodes.contains(where: { n in
            (moves(of: n)?.contains { opset < $0.since && n.input($0.index) != nil } ?? false)
                || !n.subgraphs.isEmpty
        }) else { return graph }
        var g = graph
        var constants: [String: Tensor] = [:]
        for n in g.nodes where n.opType == "Constant" && OpSet.isDefaultDomain(n) {
            if let out = n.outputs.first, let t = try? ConstantOp.value(of: n) { constants[out] = t }
        }
        var released: Set<String> = []
        for i in g.nodes.indices {
            g.nodes[i].rewriteSubgraphs { $0 = writtenForm($0, opset: opset) }
            guard let list = moves(of: g.nodes[i]), list.allSatisfy({ opset < $0.since }) else { continue }
            var node = g.nodes[i]
            // Only the trailing inputs move (Slice's steps, Pad's axes have no attribute form).
            guard node.inputs.count <= (list.map(\.index).max() ?? 0) + 1 else { continue }
            var attributes: [Attribute] = []
            for m in list {
                guard let input = node.input(m.index) else { continue }
                guard let t = g.initializers[input] ?? constants[input], let v = attribute(t, m.kind) else {
                    attributes = []
                    break
                }
                attributes.append(Attribute(name: m.attribute, value: v))
            }
            guard !attributes.isEmpty else { continue }
            for m in list { if let input = node.input(m.index) { released.insert(input); node.inputs[m.index] = "" } }
            while let last = node.inputs.last, last.isEmpty { node.inputs.removeLast() }
            node.attributes += attributes
            g.nodes[i] = node
        }
        let read = Set(g.nodes.flatMap(\.inputs) + g.nodes.flatMap(\.subgraphOuterNames) + g.outputs.map(\.name) + g.inputs.map(\.name))
        let unread = released.subtracting(read)
        for name in unread { g.initializers[name] = nil }
        g.nodes.removeAll { $0.opType == "Constant" && OpSet.isDefaultDomain($0) && $0.outputs.allSatisfy(unread.contains) }
        return g
    }

    /// `t` as the attribute value of `kind`; nil when it does not fit.
    package static func attribute(_ t: Tensor, _ kind: Kind) -> AttributeValue? {
        switch kind {
        case .int64s: ints(t).map { .ints($0) }
        case .int64One: t.elementCount == 1 ? ints(t)?.first.map { .int($0) } : nil
        case .scalarOfInput: t.elementCount == 1 ? t.doubles().first.map { .float(Float($0)) } : nil
        }
    }

    /// The values of an int64 or int32 tensor (the types ONNX gives these inputs).
    static func ints(_ t: Tensor) -> [Int]? {
        switch t.dtype {
        case .int64: t.scalars(as: Int64.self).map { Int($0) }
        case .int32: t.scalars(as: Int32.self).map { Int($0) }
        default: nil
        }
    }
}
