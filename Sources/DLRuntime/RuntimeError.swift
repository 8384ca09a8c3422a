import DLGraph
import DLTensor

/// Why a model cannot run with the given inputs. Each case names the input, output or node.
///
/// Two cases say why a node failed, and they mean different things to a caller:
/// `invalidInput` — the model or its inputs break the op's contract (a shape that does not fit,
/// an index out of range, a missing required input): the same file fails in every runtime;
/// `unsupported` — the input is valid but DLKit does not implement that form of the op yet
/// (a dtype, a mode, a rank): another runtime may run it.
public enum RuntimeError: Error, CustomStringConvertible {
    case invalidGraph(GraphError)
    case missingInput(name: String)
    case unknownInput(name: String, expected: [String])
    case unknownOutput(name: String, available: [String])
    case inputType(name: String, expected: DType, actual: DType)
    case inputShape(name: String, expected: TensorType, actual: [Int])
    case node(String, GraphError)
    case invalidInput(node: String, reason: String)
    case unsupported(node: String, reason: String)

    public var description: String {
        switch self {
        case .invalidGraph(let e): "\(e)"
        case .missingInput(let n): "input '\(n)' is missing"
        case .unknownInput(let n, let e): "'\(n)' is not an input of the model (inputs: \(e.joined(separator: ", ")))"
        case .unknownOutput(let n, let a): "'\(n)' is not an output of the model (outputs: \(a.joined(separator: ", ")))"
        case .inputType(let n, let e, let a): "input '\(n)' must be \(e), got \(a)"
        case .inputShape(let n, let e, let a): "input '\(n)' has shape \(a), expected \(e.dims.map { "[" + $0.map(\.description).joined(separator: ",") + "]" } ?? "any")"
        case .node(let n, let e): "while running node \(n): \(e)"
        case .invalidInput(let n, let r): "node \(n): \(r)"
        case .unsupported(let n, let r): "node \(n): \(r)"
        }
    }
}

extension RuntimeError {
    /// True when the failure is a form of an op DLKit does not implement, rather than a wrong input.
    public var isUnsupported: Bool {
        switch self {
        case .unsupported: true
        case .node(_, .unsupportedOps): true
        case .invalidGraph(.unsupportedOps): true
        default: false
        }
    }
}
