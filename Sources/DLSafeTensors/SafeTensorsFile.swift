import DLTensor

/// A safetensors file, memory-mapped and fully validated when opened.
///
/// Layout: a little-endian u64 header length `N`, `N` bytes of UTF-8 JSON naming each tensor's
/// dtype, shape and `data_offsets` (relative to the data section) plus an optional `__metadata__`
/// object of strings, then the data section of little-endian, row-major element bytes.
///
/// Opening checks every rule of the format (see `parseHeader`) and throws a `SafeTensorsError`
/// naming the tensor and byte offset at the first broken one; a file that opens can be read
/// without further failures. Input is treated as hostile: the header is capped at 100,000,000
/// bytes, JSON nesting is bounded, all size arithmetic is checked.
///
/// Tensors are zero-copy, read-only views into the mapping when their bytes sit at an address
/// that is a multiple of their element width, so typed access is always aligned. A file whose
/// header length is not a multiple of 8 can leave tensors misaligned; those (and only those) are
/// copied into owned, aligned storage. `Tensor.isMapped` tells which happened.
///
/// Names are compared as Swift strings, that is up to Unicode canonical equivalence: two header
/// names that differ only in normalisation count as duplicates.
public struct SafeTensorsFile: Sendable {
    /// The largest header accepted, in bytes (the reference implementation's limit).
    public static let maxHeaderLength = 100_000_000

    public let path: String
    /// `__metadata__`; empty when the file has none.
    public let metadata: [String: String]
    /// Every tensor in file order, that is in the order of their data offsets.
    public let entries: [SafeTensorsEntry]
    /// The header length `N` from the first 8 bytes.
    public let headerLength: Int
    /// Offset of the data section in the file: `8 + headerLength`.
    public var dataStart: Int { 8 + headerLength }
    /// The file's size in bytes.
    public var fileSize: Int { file.byteCount }

    private let file: MappedFile
    private let indexByName: [String: Int]

    /// Maps and validates the file at `path`.
    /// - Throws: `SafeTensorsError` for a file that cannot be opened or breaks any rule of the format.
    public init(path: String) throws(SafeTensorsError) {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let e as MappedFileError {
            switch e {
            case .cannotOpen(_, let reason), .cannotMap(_, let reason):
                throw .cannotOpen(path: path, reason: reason)
            }
        } catch {
            throw .cannotOpen(path: path, reason: "\(error)")
        }
        try self.init(file: file)
    }

    /// Validates an already mapped file.
    public init(file: MappedFile) throws(SafeTensorsError) {
        let path = file.path
        let size = file.byteCount
        guard size >= 8 else { throw .fileTooSmall(path: path, fileSize: size) }
        var reader = ByteReader(file.bytes)
        let claimed: UInt64
        do { claimed = try reader.readLE(UInt64.self) } catch { throw .fileTooSmall(path: path, fileSize: size) }
        guard claimed <= UInt64(Self.maxHeaderLength) else {
            throw .headerTooLarge(path: path, headerLength: claimed, limit: Self.maxHeaderLength)
        }
        let n = Int(claimed)
        guard n <= size - 8 else { throw .headerTruncated(path: path, headerLength: claimed, fileSize: size) }

        let json = UnsafeRawBufferPointer(rebasing: file.bytes[8..<(8 + n)])
        let parsed = try Self.parseHeader(json, path: path, dataStart: 8 + n, fileSize: size)

        var index: [String: Int] = [:]
        index.reserveCapacity(parsed.entries.count)
        for (i, e) in parsed.entries.enumerated() { index[e.name] = i }

        self.path = path
        self.file = file
        self.headerLength = n
        self.entries = parsed.entries
        self.metadata = parsed.metadata
        self.indexByName = index
    }

    /// Tensor names in file order (the order of their data offsets).
    public var names: [String] { entries.map(\.name) }

    /// The entry for `name`, or nil when the file has no such tensor.
    public func entry(_ name: String) -> SafeTensorsEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The tensor called `name`: a read-only view into the mapping when its bytes are aligned for
    /// its dtype, otherwise an aligned copy. The view keeps the mapping alive.
    /// - Throws: `SafeTensorsError.tensorNotFound` when there is no such tensor.
    public func tensor(named name: String) throws(SafeTensorsError) -> Tensor {
        guard let e = entry(name) else { throw .tensorNotFound(path: path, name: name) }
        return try tensor(for: e)
    }

    /// Every tensor in file order, each as `tensor(named:)` returns it.
    public func tensors() throws(SafeTensorsError) -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        out.reserveCapacity(entries.count)
        for e in entries { out.append((e.name, try tensor(for: e))) }
        return out
    }

    private func tensor(for e: SafeTensorsEntry) throws(SafeTensorsError) -> Tensor {
        let start = e.fileRange.lowerBound
        let address = file.base.map { Int(bitPattern: $0) } ?? 0
        do {
            if (address &+ start) % e.dtype.byteWidth == 0 {
                return try Tensor(dtype: e.dtype, shape: e.shape, viewing: file, offset: start)
            }
            return try Tensor(dtype: e.dtype, shape: e.shape, bytes: UnsafeRawBufferPointer(rebasing: file.bytes[e.fileRange]))
        } catch {
            // Unreachable for a validated entry; reported rather than trapped all the same.
            throw .invalidEntry(path: path, name: e.name, offset: start, detail: error.description)
        }
    }
}
