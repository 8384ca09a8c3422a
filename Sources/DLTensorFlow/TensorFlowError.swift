import DLGraph

/// Why a TensorFlow SavedModel or checkpoint cannot be read. Every case names the file and,
/// where it applies, the block, tensor, function or node.
public enum TensorFlowError: Error, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    /// The table (`.index`) is malformed: bad footer, block, entry or checksum.
    case badTable(path: String, reason: String)
    /// An index entry or the shard data of one tensor is wrong.
    case badTensor(path: String, tensor: String, reason: String)
    case notSavedModel(path: String, reason: String)
    case notTFJS(path: String, reason: String)
    case signature(path: String, reason: String)
    case badNode(path: String, node: String, reason: String)
    /// Ops with no translation, all at once (`op (node, ...)`).
    case unsupportedOps(path: String, ops: [String])
    case graph(path: String, GraphError)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): "\(p): \(r)"
        case .cannotWrite(let p, let r): "\(p): cannot write: \(r)"
        case .badTable(let p, let r): "\(p): not a valid TensorFlow checkpoint index: \(r)"
        case .badTensor(let p, let t, let r): "\(p): tensor '\(t)': \(r)"
        case .notSavedModel(let p, let r): "\(p): not a valid SavedModel: \(r)"
        case .notTFJS(let p, let r): "\(p): not a valid TensorFlow.js model: \(r)"
        case .signature(let p, let r): "\(p): \(r)"
        case .badNode(let p, let n, let r): "\(p): node '\(n)': \(r)"
        case .unsupportedOps(let p, let ops):
            "\(p): \(ops.count) TensorFlow op\(ops.count == 1 ? " has" : "s have") no DLKit translation yet: \(ops.joined(separator: ", "))"
        case .graph(let p, let e): "\(p): \(e)"
        }
    }
}
