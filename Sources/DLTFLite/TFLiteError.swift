import DLGraph

/// Why a `.tflite` file cannot be read or written. Each message is one line naming the file and
/// the tensor, operator or byte offset at fault.
public enum TFLiteError: Error, CustomStringConvertible, Sendable {
    case cannotRead(path: String, reason: String)
    /// Bytes 4..<8 are not the `TFL3` identifier.
    case notTFLite(path: String, reason: String)
    /// The FlatBuffer structure is broken: an offset, vtable or vector outside the file.
    case malformed(path: String, FlatBufferError)
    /// The structure is sound but its content is not: an index out of range, a bad shape, data
    /// of the wrong size.
    case invalid(path: String, object: String, reason: String)
    /// Operators DLKit cannot translate, "NAME (xN)" each, all of them.
    case unsupportedOps(path: String, ops: [String])
    case graph(path: String, GraphError)
    case write(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): "\(p): \(r)"
        case .notTFLite(let p, let r): "\(p): not a TFLite model (\(r))"
        case .malformed(let p, let e): "\(p): malformed TFLite FlatBuffer: \(e.object) at byte \(e.offset): \(e.reason)"
        case .invalid(let p, let o, let r): "\(p): \(o): \(r)"
        case .unsupportedOps(let p, let ops):
            "\(p): unsupported TFLite operator\(ops.count == 1 ? "" : "s"): \(ops.joined(separator: ", "))"
        case .graph(let p, let e): "\(p): \(e)"
        case .write(let p, let r): "\(p): cannot write TFLite: \(r)"
        }
    }
}
