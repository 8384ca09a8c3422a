/// Why a PyTorch file could not be read or written.
///
/// Every case carries the file path; cases about a pickle carry the archive entry and the byte
/// offset of the opcode inside that pickle; cases about a tensor carry its name (a dotted path
/// such as `model.fc1.weight`). `description` is one line a user can act on.
public enum TorchError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened or memory-mapped.
    case cannotOpen(path: String, reason: String)
    /// Neither a zip archive with a `data.pkl` nor a legacy `torch.save` file.
    case notTorchFile(path: String, detail: String)
    /// The zip structure is broken: `offset` is where in the file.
    case invalidZip(path: String, offset: Int, detail: String)
    /// An entry's bytes lie outside the file.
    case entryOutsideFile(path: String, entry: String, offset: Int, byteCount: Int, fileSize: Int)
    /// An entry is compressed; `torch.save` writes every entry stored.
    case compressedEntry(path: String, entry: String, method: Int)
    /// The archive lacks an entry the pickle refers to.
    case missingEntry(path: String, entry: String)
    /// The pickle is malformed at `offset` (in `entry`).
    case invalidPickle(path: String, entry: String, offset: Int, detail: String)
    /// The pickle names a global that the restricted unpickler does not allow; nothing was built.
    case forbiddenGlobal(path: String, entry: String, offset: Int, name: String)
    /// The pickle uses an opcode the restricted unpickler does not interpret.
    case unsupportedOpcode(path: String, entry: String, offset: Int, opcode: UInt8)
    /// The pickle passes a bound (stack, memo, nesting, integer size).
    case limitExceeded(path: String, entry: String, offset: Int, what: String)
    /// A tensor needs bytes past the end of its storage.
    case storageTooShort(path: String, tensor: String, storage: String, needed: Int, available: Int)
    /// A tensor record is inconsistent (shape, stride, offset, dtype).
    case invalidTensor(path: String, tensor: String, detail: String)
    /// A tensor's element type has no DLKit form (quantized, float8, ...).
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// `--key` named something the file does not hold.
    case keyNotFound(path: String, key: String, available: [String])
    /// The selected value is not something tensors can be taken from.
    case notAStateDict(path: String, detail: String)
    /// A value cannot be written as a pickle (the writer's own limits).
    case unwritable(path: String, detail: String)
    /// The file system refused the write; the destination was left as it was.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): "\(p): cannot open: \(r)"
        case .notTorchFile(let p, let d): "\(p): not a PyTorch file: \(d)"
        case .invalidZip(let p, let o, let d): "\(p): broken zip archive at offset \(o): \(d)"
        case .entryOutsideFile(let p, let e, let o, let n, let size):
            "\(p): zip entry '\(e)' claims \(n) bytes at offset \(o), but the file ends at \(size): the file is truncated or corrupt"
        case .compressedEntry(let p, let e, let m):
            "\(p): zip entry '\(e)' is compressed (method \(m)); torch.save stores entries uncompressed: re-save it with torch.save or unzip and re-zip with -0"
        case .missingEntry(let p, let e): "\(p): the archive has no entry '\(e)'"
        case .invalidPickle(let p, let e, let o, let d): "\(p): \(e) at offset \(o): \(d)"
        case .forbiddenGlobal(let p, let e, let o, let n):
            "\(p): \(e) at offset \(o) refers to '\(n)', which is not allowed in a weights file (only tensors, storages, dtypes and plain containers are); nothing was run"
        case .unsupportedOpcode(let p, let e, let o, let c):
            "\(p): \(e) at offset \(o): pickle opcode 0x\(String(c, radix: 16)) is not one a weights file uses"
        case .limitExceeded(let p, let e, let o, let w): "\(p): \(e) at offset \(o): \(w)"
        case .storageTooShort(let p, let t, let s, let n, let a):
            "\(p): tensor '\(t)' needs \(n) bytes of storage '\(s)', which has \(a): the file is truncated or corrupt"
        case .invalidTensor(let p, let t, let d): "\(p): tensor '\(t)': \(d)"
        case .unsupportedDType(let p, let t, let d): "\(p): tensor '\(t)' has dtype \(d), which DLKit cannot represent"
        case .keyNotFound(let p, let k, let a):
            "\(p): no entry '\(k)'" + (a.isEmpty ? "" : "; top-level entries: \(a.prefix(12).joined(separator: ", "))\(a.count > 12 ? ", ..." : "")")
        case .notAStateDict(let p, let d): "\(p): \(d)"
        case .unwritable(let p, let d): "\(p): cannot write: \(d)"
        case .writeFailed(let p, let r): "\(p): write failed: \(r); the file was left as it was"
        }
    }
}
