import DLGraph
import DLTensor

/// Moves a graph between ai.onnx opset versions for writing: each node is rewritten into the
/// form its op has at the target version (`OpsetAdapters.table`, one entry per op), and every
/// node that has no such form is reported, all in one error.
///
/// The IR holds one form per op (see `Graph` and `NormalForm`); the source version is the graph's
/// `metadata.onnxOpset` (17 when none), and a target equal to it changes no node.
public enum OpsetConverter {
    /// The opsets DLKit writes: 7 (the oldest it reads) to 26 (the newest ONNX Runtime 1.31 loads).
    public static let supportedOpsets = 7...26

    /// Rewrites `graph` for ai.onnx opset `target` and sets its opset import to it.
    /// - Returns: the number of nodes whose form changed.
    /// - Throws: `ONNXError.unsupportedOpset` for a target outside `supportedOpsets`,
    ///   `.opsetConversion` listing every node that blocks the target.
    @discardableResult
    public static func convert(_ graph: inout Graph, to target: Int, path: String) throws(ONNXError) -> Int {
        guard supportedOpsets.contains(target) else {
            throw .unsupportedOpset(path: path, domain: "", version: target,
                                    reason: "DLKit writes opsets \(supportedOpsets.lowerBound) to \(supportedOpsets.upperBound) (the newest ONNX Runtime 1.31 loads)")
        }
        let source = graph.metadata.onnxOpset ?? ONNXWriter.defaultOpset
        var changed = 0
        if source != target {
            let context = OpsetConversionContext(graph)
            var blockers: [String] = []
            var nodes = graph.nodes
            for i in nodes.indices where nodes[i].domain.isEmpty || nodes[i].domain == "ai.onnx" {
                let before = nodes[i]
                do throws(OpsetBlock) {
                    try convert(&nodes[i], from: source, to: target, context: context)
                } catch {
                    blockers.append("node \(before.displayName): \(error.reason)")
                    continue
                }
                if !same(before, nodes[i]) { changed += 1 }
            }
            guard blockers.isEmpty else {
                throw .opsetConversion(path: path, from: source, to: target, blockers: blockers)
            }
            graph.nodes = nodes
            graph.initializers = context.initializers
            let produced = Set(nodes.flatMap(\.outputs))
            graph.valueInfo.removeAll { !produced.contains($0.name) }
        }
        var imports = graph.metadata.opsetImports.filter { !($0.domain.isEmpty || $0.domain == "ai.onnx") }
        imports.insert(("", target), at: 0)
        graph.metadata.opsetImports = imports
        if source != target { graph.metadata.irVersion = 0 }  // recomputed for the target
        return changed
    }

    static func convert(_ node: inout Node, from: Int, to: Int, context: OpsetConversionContext) throws(OpsetBlock) {
        guard let adapter = OpsetAdapters.table[node.opType] else {
            throw OpsetBlock("DLKit knows no version history of \(node.opType) to convert it from opset \(from) to \(to)")
        }
        if to < adapter.introduced {
            throw OpsetBlock("\(node.opType) exists only from opset \(adapter.introduced)")
        }
        if to < 13, from >= 13, let t = context.dtype(node.input(0) ?? ""), t == .bfloat16 {
            throw OpsetBlock("bfloat16 inputs need opset 13 or later")
        }
        var step = OpsetStep(node: node, from: from, to: to, context: context)
        try adapter.convert(&step)
        node = step.node
    }

    static func same(_ a: Node, _ b: Node) -> Bool {
        a.inputs == b.inputs && a.outputs == b.outputs
            && a.attributes.map { "\($0.name)=\($0.value)" } == b.attributes.map { "\($0.name)=\($0.value)" }
    }
}

/// Why one node cannot take the target opset's form.
struct OpsetBlock: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// What adapters may look up and add while converting: initializers (new ones get fresh names),
/// constant values, value types, and which values anything reads.
final class OpsetConversionContext {
    var initializers: NamedTensors
    let types: [String: TensorType]
    private let constants: [String: Tensor]
    /// Values read by some node or listed as graph outputs.
    let consumed: Set<String>
    private var names: Set<String>

    init(_ graph: Graph) {
        initializers = graph.initializers
        // Inference stops at ops the IR does not hold yet; graph inputs and initializers are known anyway.
        var known: [String: TensorType] = [:]
        for v in graph.inputs + graph.valueInfo { if let t = v.type { known[v.name] = t } }
        for (n, t) in graph.initializers { known[n] = TensorType(dtype: t.dtype, shape: t.shape) }
        types = (try? graph.inferTypes()) ?? known
        var constants: [String: Tensor] = [:]
        var consumed = Set(graph.outputs.map(\.name))
        var names = Set(graph.inputs.map(\.name)).union(graph.initializers.names)
        for n in graph.nodes {
            consumed.formUnion(n.inputs.filter { !$0.isEmpty })
            names.formUnion(n.outputs)
            if n.opType == "Constant", let out = n.outputs.first, let t = try? ConstantOp.value(of: n) { constants[out] = t }
        }
        self.constants = constants
        self.consumed = consumed
        self.names = names
    }

    /// The value of `name` when it is known before running (an initializer or a Constant output).
    func constant(_ name: String) -> Tensor? { initializers[name] ?? constants[name] }
    func rank(_ name: String) -> Int? { types[name]?.rank }
    func dtype(_ name: String) -> DType? { types[name]?.dtype ?? initializers[name]?.dtype }

    /// Adds `tensor` as an initializer under a name built from `base` that nothing else uses.
    func addInitializer(_ tensor: Tensor, base: String) -> String {
        var name = base
        var i = 1
        while names.contains(name) { name = "\(base)_\(i)"; i += 1 }
        names.insert(name)
        initializers[name] = tensor
        return name
    }
}

/// One node on its way from opset `from` to opset `to`, with helpers for the usual rewrites.
struct OpsetStep {
    var node: Node
    let from: Int
    let to: Int
    let context: OpsetConversionContext

    /// True when the conversion goes from at or after `version` to before it.
    func down(_ version: Int) -> Bool { from >= version && to < version }
    /// True when the conversion goes from before `version` to at or after it.
    func up(_ version: Int) -> Bool { from < version && to >= version }

    func int(_ name: String) -> Int? { if case .int(let v)? = node.attribute(name) { v } else { nil } }

    mutating func setAttribute(_ name: String, _ value: AttributeValue) {
        if let i = node.attributes.firstIndex(where: { $0.name == name }) {
            node.attributes[i].value = value
        } else {
            node.attributes.append(Attribute(name: name, value: value))
        }
    }

    mutating func removeAttribute(_ name: String) { node.attributes.removeAll { $0.name == name } }

    /// Sets input `index`, padding skipped optional inputs with "".
    mutating func setInput(_ index: Int, _ name: String) {
        while node.inputs.count <= index { node.inputs.append("") }
        node.inputs[index] = name
    }

    /// Removes input `index` and any empty optional inputs left at the end.
    mutating func removeInput(_ index: Int) {
        if index < node.inputs.count { node.inputs[index] = "" }
        while let last = node.inputs.last, last.isEmpty { node.inputs.removeLast() }
    }

    /// The rank of input 0, or a block naming why it is needed.
    func rank(for purpose: String) throws(OpsetBlock) -> Int {
        guard let r = context.rank(node.input(0) ?? "") else {
            throw OpsetBlock("the rank of input '\(node.input(0) ?? "")' is unknown, and \(purpose)")
        }
        return r
    }

    /// Turns a negative `attribute` axis into its positive form (opsets before `version` allow
    /// only those), using the input's rank.
    mutating func positiveAxis(_ attribute: String, before version: Int) throws(OpsetBlock) {
        guard down(version), let a = int(attribute), a < 0 else { return }
        let r = try rank(for: "opset \(to) needs a non-negative \(attribute) (\(a))")
        setAttribute(attribute, .int(a + r))
    }

    /// Drops `attribute` going below `version`, where it does not exist, when it holds the value
    /// that means the same as its absence; any other value blocks.
    mutating func dropAttribute(_ attribute: String, before version: Int, when neutral: (AttributeValue) -> Bool,
                                meaning: String) throws(OpsetBlock) {
        guard down(version), let v = node.attribute(attribute) else { return }
        guard neutral(v) else { throw OpsetBlock("\(meaning) needs opset \(version) or later") }
        removeAttribute(attribute)
    }

    /// Fails going across `version` (either way) when output `index` is present and read:
    /// its type or meaning differs on the two sides.
    mutating func dropOutput(_ index: Int, across version: Int, meaning: String) throws(OpsetBlock) {
        guard down(version) || up(version), index < node.outputs.count, !node.outputs[index].isEmpty else { return }
        guard !context.consumed.contains(node.outputs[index]) else {
            throw OpsetBlock("output '\(node.outputs[index])' (\(meaning)) differs before and after opset \(version)")
        }
        node.outputs.removeSubrange(index...)
    }

    /// Checks that input `m.index`, which the writer turns back into attribute `m.attribute` going
    /// below `m.since`, is known before running (an initializer or a Constant) and of the
    /// attribute's kind (`NormalForm.writtenForm` does the move).
    func attributeInput(_ m: NormalForm.Move) throws(OpsetBlock) {
        guard down(m.since), let input = node.input(m.index) else { return }
        guard let t = context.constant(input) else {
            throw OpsetBlock("input '\(input)' (\(m.attribute)) is computed at run time; opset \(to) needs it as an attribute")
        }
        guard NormalForm.attribute(t, m.kind) != nil else {
            throw OpsetBlock("input '\(input)' (\(m.attribute)) is not \(m.kind == .scalarOfInput ? "a scalar" : "a list of integers")")
        }
    }
}
