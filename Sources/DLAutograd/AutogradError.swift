import DLGraph
import DLRuntime

/// Why differentiating a graph failed; every case names the node or value at fault.
public enum AutogradError: Error, CustomStringConvertible {
    /// Ops on the path from a parameter to the loss that have no gradient rule (op → count).
    case noGradientRule([String: Int])
    case runtime(RuntimeError)
    /// The node's inputs or attributes break the op's contract.
    case invalidInput(node: String, reason: String)
    /// A valid form of the op whose gradient DLKit does not compute yet.
    case unsupported(node: String, reason: String)
    case unknownValue(String)
    case shapeMismatch(value: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .noGradientRule(let ops):
            "no gradient rule for " + ops.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value)x)" }.joined(separator: ", ")
        case .runtime(let e): "\(e)"
        case .invalidInput(let n, let r), .unsupported(let n, let r): "\(n): \(r)"
        case .unknownValue(let v): "value '\(v)' is not in the graph"
        case .shapeMismatch(let v, let e, let a): "gradient of '\(v)' has shape \(a), expected \(e)"
        }
    }
}
