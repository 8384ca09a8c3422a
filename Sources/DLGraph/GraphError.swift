import DLTensor

/// Why a graph cannot be built, checked or typed. Each case names the node or value.
public enum GraphError: Error, CustomStringConvertible, Equatable {
    /// Ops with no IR translation, each with its count, sorted by name.
    case unsupportedOps([String: Int])
    case attributeType(node: String, attribute: String, expected: String, actual: String)
    case invalidAttribute(node: String, attribute: String, reason: String)
    case arity(node: String, reason: String)
    case undefinedValue(node: String, value: String)
    case duplicateValue(String)
    case cycle(nodes: [String])
    case missingOutput(String)
    case typeMismatch(node: String, reason: String)
    case shapeMismatch(node: String, reason: String)
    case needsConstant(node: String, input: String)
    /// Running the graph would hold more than the allocation budget at once (`Graph+Budget.swift`).
    case overBudget(value: String, bytes: Int, budget: Int)

    public var description: String {
        switch self {
        case .unsupportedOps(let ops):
            let list = ops.sorted { $0.key < $1.key }.map { $0.value > 1 ? "\($0.key) (x\($0.value))" : $0.key }
            return "unsupported ops: \(list.joined(separator: ", "))"
        case .attributeType(let n, let a, let e, let actual):
            return "node \(n): attribute '\(a)' should be \(e) but is \(actual)"
        case .invalidAttribute(let n, let a, let r): return "node \(n): attribute '\(a)' \(r)"
        case .arity(let n, let r): return "node \(n): \(r)"
        case .undefinedValue(let n, let v): return "node \(n) reads '\(v)', which no input, initializer or earlier node defines"
        case .duplicateValue(let v): return "value '\(v)' is defined more than once"
        case .cycle(let nodes): return "the graph has a cycle through \(nodes.prefix(5).joined(separator: ", "))"
        case .missingOutput(let v): return "graph output '\(v)' is not produced by any node, input or initializer"
        case .typeMismatch(let n, let r): return "node \(n): \(r)"
        case .shapeMismatch(let n, let r): return "node \(n): \(r)"
        case .needsConstant(let n, let i): return "node \(n): input '\(i)' must be known before running (an initializer or constant)"
        case .overBudget(let v, let b, let budget):
            return "running the graph would hold \(b) bytes at once (at value '\(v)'), over the allocation budget of \(budget) bytes; refused before running"
        }
    }
}
