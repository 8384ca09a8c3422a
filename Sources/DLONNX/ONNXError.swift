import DLGraph
import DLTensor

/// Why an ONNX file cannot be read or written. Every case names the file and, where it applies,
/// the tensor, node or value.
public enum ONNXError: Error, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case notONNX(path: String, reason: String)
    case tooLarge(path: String, bytes: Int)
    case noGraph(path: String)
    case unsupportedDataType(path: String, tensor: String, code: Int32)
    case invalidTensor(path: String, tensor: String, reason: String)
    case invalidExternalData(path: String, tensor: String, reason: String)
    case unsupportedType(path: String, value: String, kind: String)
    case invalidDim(path: String, value: String, dim: Int64)
    case unsupportedAttribute(path: String, node: String, attribute: String, kind: String)
    case unsupportedOpset(path: String, domain: String, version: Int, reason: String)
    case graph(path: String, GraphError)
    case write(path: String, reason: String)
    /// Nodes whose op has no form at the target opset, each with the reason, all at once.
    case opsetConversion(path: String, from: Int, to: Int, blockers: [String])

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): "\(p): \(r)"
        case .notONNX(let p, let r): "\(p): not an ONNX model (\(r))"
        case .tooLarge(let p, let n): "\(p): \(n) bytes is over the 2 GiB protobuf limit; keep weights as external data"
        case .noGraph(let p): "\(p): the model has no graph"
        case .unsupportedDataType(let p, let t, let c): "\(p): tensor '\(t)' has ONNX data type \(c), which DLKit does not support yet"
        case .invalidTensor(let p, let t, let r): "\(p): tensor '\(t)': \(r)"
        case .invalidExternalData(let p, let t, let r): "\(p): tensor '\(t)': external data \(r)"
        case .unsupportedType(let p, let v, let k): "\(p): value '\(v)' is a \(k); only tensors, sequences and optionals are supported"
        case .invalidDim(let p, let v, let d): "\(p): value '\(v)' has dimension \(d); sizes must be non-negative (or -1 for unknown)"
        case .unsupportedAttribute(let p, let n, let a, let k): "\(p): node \(n): attribute '\(a)' of kind \(k) is not supported"
        case .unsupportedOpset(let p, let d, let v, let r): "\(p): opset \(d.isEmpty ? "ai.onnx" : d) \(v): \(r)"
        case .graph(let p, let e): "\(p): \(e)"
        case .write(let p, let r): "\(p): cannot write: \(r)"
        case .opsetConversion(let p, let f, let t, let b):
            "\(p): cannot write opset \(t) (the graph is opset \(f)): \(b.count == 1 ? "1 node blocks" : "\(b.count) nodes block") it: \(b.joined(separator: "; "))"
        }
    }
}
