import DLTensor

/// Why a safetensors file could not be read or written.
///
/// One case per failure. Every case carries the file path; cases about one tensor carry its name;
/// `offset` is always an absolute byte offset in the file (for header problems, where in the
/// header JSON the problem is). `description` is one line a user can act on.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    // Reading: the frame.
    /// The file could not be opened or memory-mapped.
    case cannotOpen(path: String, reason: String)
    /// The file is shorter than the 8-byte header length that starts every safetensors file.
    case fileTooSmall(path: String, fileSize: Int)
    /// The header length is over `limit` (100,000,000 bytes, as in the reference implementation).
    case headerTooLarge(path: String, headerLength: UInt64, limit: Int)
    /// The header length runs past the end of the file.
    case headerTruncated(path: String, headerLength: UInt64, fileSize: Int)

    // Reading: the header.
    /// The header is not UTF-8 JSON, or its top level is not an object.
    case invalidJSON(path: String, offset: Int, detail: String)
    /// A tensor's entry is malformed: not an object, a field missing or of the wrong kind, a
    /// negative or non-integer size, `data_offsets` not two integers.
    case invalidEntry(path: String, name: String, offset: Int, detail: String)
    /// The dtype is not one DLKit reads (unknown, or safetensors-only types such as `F8_E4M3`).
    case unknownDType(path: String, name: String, offset: Int, dtype: String)
    /// A name appears twice: in the header (`offset` is the second occurrence) or in a write.
    case duplicateName(path: String, name: String, offset: Int?)
    /// `__metadata__` is not an object of string values, or repeats a key.
    case invalidMetadata(path: String, key: String, offset: Int, detail: String)

    // Reading: where the bytes are.
    /// `data_offsets` end before they begin.
    case invalidOffsets(path: String, name: String, begin: Int, end: Int)
    /// `end − begin` is not the byte size of the shape and dtype; `expected` is nil when that size
    /// overflows.
    case sizeMismatch(path: String, name: String, dtype: DType, shape: [Int], expected: Int?, actual: Int, offset: Int)
    /// The tensor's bytes run past the end of the file.
    case dataPastEnd(path: String, name: String, offset: Int, byteCount: Int, fileSize: Int)
    /// The tensor starts inside the bytes of `other`.
    case overlap(path: String, name: String, other: String, offset: Int)
    /// `gap` bytes no tensor owns lie at `offset`, just before the tensor.
    case hole(path: String, name: String, offset: Int, gap: Int)
    /// The last tensor ends at `dataEnd`, before the end of the file.
    case trailingBytes(path: String, dataEnd: Int, fileSize: Int)

    // Lookup.
    /// No tensor has this name.
    case tensorNotFound(path: String, name: String)

    // Writing.
    /// The name cannot be written (empty, or the reserved `__metadata__`).
    case invalidName(path: String, name: String, detail: String)
    /// The tensor's dtype has no safetensors form (`string`).
    case unsupportedDType(path: String, name: String, dtype: DType)
    /// The file system refused the write; the destination was left as it was.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let reason):
            return "\(p): cannot open: \(reason)"
        case .fileTooSmall(let p, let size):
            return "\(p): the file is \(size) bytes, but a safetensors file starts with an 8-byte header length: "
                + "it is truncated or not a safetensors file"
        case .headerTooLarge(let p, let length, let limit):
            return "\(p): the header length is \(length) bytes, over the limit of \(limit): "
                + "the file is corrupt or not a safetensors file"
        case .headerTruncated(let p, let length, let size):
            return "\(p): the header needs \(length) bytes at offset 8, but the file ends at \(size): "
                + "the file is truncated or not a safetensors file"
        case .invalidJSON(let p, let offset, let detail):
            return "\(p): the header is not valid JSON at offset \(offset): \(detail)"
        case .invalidEntry(let p, let name, let offset, let detail):
            return "\(p): tensor \(quoted(name)) (header offset \(offset)): \(detail)"
        case .unknownDType(let p, let name, let offset, let dtype):
            let known = DType.allCases.compactMap(\.safetensorsName).joined(separator: ", ")
            return "\(p): tensor \(quoted(name)) (header offset \(offset)) has dtype \(quoted(dtype)), "
                + "which DLKit does not read; it reads \(known)"
        case .duplicateName(let p, let name, let offset):
            if let offset {
                return "\(p): tensor \(quoted(name)) appears twice in the header (again at offset \(offset)): "
                    + "the file is ambiguous; rewrite it with unique names"
            }
            return "\(p): tensor \(quoted(name)) is given twice: names in a safetensors file must be unique"
        case .invalidMetadata(let p, let key, let offset, let detail):
            return "\(p): __metadata__ entry \(quoted(key)) (header offset \(offset)): \(detail)"
        case .invalidOffsets(let p, let name, let begin, let end):
            return "\(p): tensor \(quoted(name)) has data_offsets [\(begin), \(end)], which end before they begin"
        case .sizeMismatch(let p, let name, let dtype, let shape, let expected, let actual, let offset):
            let need = expected.map { "\($0) bytes" } ?? "more bytes than can be addressed"
            return "\(p): tensor \(quoted(name)) is \(dtype.safetensorsName ?? dtype.rawValue) of shape \(shape), "
                + "which needs \(need), but its data_offsets give \(actual) bytes at offset \(offset): "
                + "the header is inconsistent"
        case .dataPastEnd(let p, let name, let offset, let count, let size):
            return "\(p): tensor \(quoted(name)) needs \(count) bytes at offset \(offset), "
                + "but the file ends at \(size): the file is truncated"
        case .overlap(let p, let name, let other, let offset):
            return "\(p): tensor \(quoted(name)) starts at offset \(offset), inside the bytes of tensor "
                + "\(quoted(other)): tensors must not overlap"
        case .hole(let p, let name, let offset, let gap):
            return "\(p): \(gap) bytes at offset \(offset), just before tensor \(quoted(name)), belong to no tensor: "
                + "tensor data must be contiguous"
        case .trailingBytes(let p, let end, let size):
            return "\(p): the last tensor ends at offset \(end), but the file has \(size) bytes: "
                + "\(size - end) bytes after it belong to no tensor"
        case .tensorNotFound(let p, let name):
            return "\(p): no tensor named \(quoted(name))"
        case .invalidName(let p, let name, let detail):
            return "\(p): cannot write tensor \(quoted(name)): \(detail)"
        case .unsupportedDType(let p, let name, let dtype):
            return "\(p): cannot write tensor \(quoted(name)): safetensors has no form for \(dtype) tensors"
        case .writeFailed(let p, let reason):
            return "\(p): write failed: \(reason); the file was left as it was"
        }
    }
}

/// `'name'` with control characters made visible, so a hostile name cannot garble a terminal.
func quoted(_ s: String) -> String {
    var out = "'"
    for u in s.unicodeScalars {
        switch u {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{00}"..."\u{1F}", "\u{7F}"..."\u{9F}":
            out += "\\u{\(String(u.value, radix: 16))}"
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "'"
}
