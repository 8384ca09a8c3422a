/// Why an OpenVINO IR file cannot be read or written. Every message is one line that starts with
/// the file and names the layer, port, edge or byte range at fault.
public enum OpenVINOError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    /// The XML is malformed, refused (DOCTYPE, entities) or over a limit.
    case invalidXML(path: String, reason: String)
    /// The XML is well formed but not a valid IR `<net>`.
    case invalidIR(path: String, reason: String)
    /// A layer's attributes, ports or constant data are wrong.
    case invalidLayer(path: String, layer: String, reason: String)
    /// Layer types with no translation, each with its count, all at once.
    case unsupportedOps(path: String, ops: [String: Int])
    /// A graph op (or a form of it) with no OpenVINO equivalent in the writer, all at once.
    case unsupportedForWriting(path: String, ops: [String: Int])
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): return "\(p): cannot read: \(r)"
        case .invalidXML(let p, let r): return "\(p): not a readable IR XML: \(r)"
        case .invalidIR(let p, let r): return "\(p): not a valid OpenVINO IR: \(r)"
        case .invalidLayer(let p, let l, let r): return "\(p): layer \(l): \(r)"
        case .unsupportedOps(let p, let ops):
            return "\(p): unsupported OpenVINO ops: \(Self.list(ops))"
        case .unsupportedForWriting(let p, let ops):
            return "\(p): cannot write as OpenVINO IR: \(Self.list(ops))"
        case .cannotWrite(let p, let r): return "\(p): cannot write: \(r)"
        }
    }

    static func list(_ ops: [String: Int]) -> String {
        ops.sorted { $0.key < $1.key }.map { $0.value > 1 ? "\($0.key) (x\($0.value))" : $0.key }.joined(separator: ", ")
    }
}
