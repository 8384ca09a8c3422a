import DLTensor

/// Common subexpression elimination: two nodes of the same op and domain reading the same inputs
/// with the same attributes compute the same values, so the later one goes and its readers read
/// the earlier one's outputs. torch.onnx emits many such repeats (one `Shape` of a value per use,
/// equal `Constant`s, equal `Unsqueeze`s of one scalar).
///
/// Also merges small equal initializers (same dtype, shape and bytes; at most `maxInitializerBytes`)
/// so Constant nodes turned into initializers by constant folding merge as well.
///
/// Never merged: random ops, nodes with subgraphs, nodes without outputs, nodes whose outputs
/// are graph outputs (the names must stay), initializers a caller may override.
package enum EliminateCommonSubexpressions: GraphPass {
    public static let name = "eliminate-common-subexpressions"
    public static let maxInitializerBytes = 1024

    static let impure: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
        "Dropout",
    ]

    public static func run(_ graph: inout Graph) -> Bool {
        let graphOutputs = Set(graph.outputs.map(\.name))
        let fed = Set(graph.inputs.map(\.name))
        var rename: [String: String] = [:]

        // Equal small initializers: the first of each kind stays.
        var byContent: [InitializerKey: String] = [:]
        for (name, t) in graph.initializers where !fed.contains(name) && !graphOutputs.contains(name) {
            guard t.dtype != .string, t.byteCount <= maxInitializerBytes else { continue }
            let key = InitializerKey(tensor: t)
            if let first = byContent[key] { rename[name] = first } else { byContent[key] = name }
        }

        var seen: [NodeKey: Int] = [:]
        var keep: [Node] = []
        for var node in graph.nodes {
            node.inputs = node.inputs.map { rename[$0] ?? $0 }
            guard !impure.contains(node.opType), node.subgraphs.isEmpty, !node.outputs.isEmpty,
                  !node.outputs.contains(where: { graphOutputs.contains($0) }) else {
                keep.append(node)
                continue
            }
            let key = NodeKey(node: node)
            if let j = seen[key], keep[j].outputs.count == node.outputs.count,
               zip(node.outputs, keep[j].outputs).allSatisfy({ $0.0.isEmpty || !$0.1.isEmpty }) {
                for (mine, theirs) in zip(node.outputs, keep[j].outputs) where !mine.isEmpty { rename[mine] = theirs }
                continue
            }
            if seen[key] == nil { seen[key] = keep.count }
            keep.append(node)
        }
        guard !rename.isEmpty else { return false }
        // A subgraph reading a renamed value by closure would lose it: leave such graphs alone.
        for node in keep where !node.subgraphs.isEmpty {
            if !node.subgraphOuterNames.isDisjoint(with: rename.keys) { return false }
        }
        for i in keep.indices { keep[i].inputs = keep[i].inputs.map { rename[$0] ?? $0 } }
        graph.nodes = keep
        for (name, _) in rename where graph.initializers.contains(name) { graph.initializers[name] = nil }
        graph.overridableInitializers.removeAll { rename[$0] != nil }
        return true
    }

    /// What makes two nodes compute the same thing.
    struct NodeKey: Hashable {
        let op: String
        let domain: String
        let inputs: [String]
        let attributes: [String]

        init(node: Node) {
            op = node.opType
            domain = node.domain == "ai.onnx" ? "" : node.domain
            inputs = node.inputs
            attributes = node.attributes.map { "\($0.name)=\(EliminateCommonSubexpressions.describe($0.value))" }.sorted()
        }
    }

    struct InitializerKey: Hashable {
        let dtype: DType
        let shape: [Int]
        let bytes: [UInt8]

        init(tensor t: Tensor) {
            dtype = t.dtype
            shape = t.shape
            bytes = t.withUnsafeBytes { Array($0) }
        }
    }

    /// A string equal for equal attribute values (floats by bit pattern, tensors by bytes).
    static func describe(_ v: AttributeValue) -> String {
        switch v {
        case .float(let f): return "f\(f.bitPattern)"
        case .int(let i): return "i\(i)"
        case .string(let s): return "s\(s.utf8.count):\(s)"
        case .floats(let f): return "F\(f.map(\.bitPattern))"
        case .ints(let i): return "I\(i)"
        case .strings(let s): return "S\(s.map { "\($0.utf8.count):\($0)" })"
        case .tensor(let t): return "t" + tensorKey(t)
        case .tensors(let ts): return "T" + ts.map(tensorKey).joined(separator: ",")
        case .type(let k): return "k\(k)"
        // Graph attributes never reach here (nodes with subgraphs are not merged).
        case .graph, .graphs: return "g\(UInt64.random(in: 0...UInt64.max))"
        }
    }

    static func tensorKey(_ t: Tensor) -> String {
        // String tensors are never taken as equal (rare, and not worth comparing).
        if t.dtype == .string { return "str\(UInt64.random(in: 0...UInt64.max))" }
        let bytes = t.withUnsafeBytes { Array($0) }
        return "\(t.dtype)\(t.shape)\(bytes)"
    }
}
