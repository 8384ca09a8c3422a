import CTensorFlowProtos
import DLTensor

/// A TensorFlow checkpoint (tensor bundle): `PREFIX.index`, a table mapping each checkpoint key
/// to a `BundleEntryProto` (dtype, shape, shard, offset, size, CRC-32C) plus a header entry under
/// the empty key (`BundleHeaderProto`: shard count, endianness, version), and the shards
/// `PREFIX.data-NNNNN-of-MMMMM` holding the bytes.
///
/// Numeric tensors are memory-mapped views of the shards (nothing copied) after their checksum
/// is verified. Partitioned (sliced) variables are refused by name.
public struct TensorBundle: Sendable {
    public struct Entry: Sendable {
        public let key: String
        public let dtype: DType
        public let shape: [Int]
        public let shard: Int
        public let offset: Int
        public let size: Int
        let crc32c: UInt32
    }

    /// The path of the `.index` file.
    public let indexPath: String
    /// Entries in key order (the header excluded).
    public let entries: [Entry]
    public let shardCount: Int
    private let shards: [Int: MappedFile]

    /// The checkpoint key of the serialized `TrackableObjectGraph` TensorFlow 2 writes.
    public static let objectGraphKey = "_CHECKPOINTABLE_OBJECT_GRAPH"

    /// Opens the bundle whose index is `path` (`.../variables.index`, `ckpt-1.index`) or whose
    /// prefix is `path` (`.../variables`, `ckpt-1`).
    public init(path: String) throws(TensorFlowError) {
        let index = path.hasSuffix(".index") ? path : path + ".index"
        let prefix = String(index.dropLast(".index".count))
        indexPath = index
        let file: MappedFile
        do { file = try MappedFile(path: index) } catch let e as MappedFileError {
            throw .cannotRead(path: index, reason: e.reason)
        } catch { throw .cannotRead(path: index, reason: "\(error)") }
        let table = Table(path: index, bytes: file.bytes)
        var list: [Entry] = []
        var header: (shards: Int, bigEndian: Bool)? = nil
        for (key, value) in try table.entries() {
            if key.isEmpty {
                guard let h = unpack(value, tensorflow__bundle_header_proto__unpack) else {
                    throw .badTable(path: index, reason: "the header entry is not a valid BundleHeaderProto")
                }
                header = (Int(h.pointee.num_shards), h.pointee.endianness == TENSORFLOW__BUNDLE_HEADER_PROTO__ENDIANNESS__BIG)
                tensorflow__bundle_header_proto__free_unpacked(h, nil)
                continue
            }
            let name = printable(key)
            guard let e = unpack(value, tensorflow__bundle_entry_proto__unpack) else {
                throw .badTensor(path: index, tensor: name, reason: "the index entry is not a valid BundleEntryProto")
            }
            defer { tensorflow__bundle_entry_proto__free_unpacked(e, nil) }
            list.append(try Self.entry(e.pointee, key: name, index: index))
        }
        guard let header else { throw .badTable(path: index, reason: "there is no header entry (the empty key)") }
        guard !header.bigEndian else { throw .badTable(path: index, reason: "the bundle is big-endian; DLKit reads little-endian checkpoints") }
        guard header.shards >= 1, header.shards <= 100_000 else {
            throw .badTable(path: index, reason: "the header claims \(header.shards) shards")
        }
        var files: [Int: MappedFile] = [:]
        for i in 0..<header.shards {
            let shard = prefix + ".data-" + Self.fiveDigits(i) + "-of-" + Self.fiveDigits(header.shards)
            // Shards no entry uses may be absent.
            guard list.contains(where: { $0.shard == i }) else { continue }
            do { files[i] = try MappedFile(path: shard) } catch let e as MappedFileError {
                throw .cannotRead(path: shard, reason: e.reason)
            } catch { throw .cannotRead(path: shard, reason: "\(error)") }
        }
        for e in list where e.shard >= header.shards {
            throw .badTensor(path: index, tensor: e.key, reason: "shard \(e.shard) is outside the \(header.shards) shards")
        }
        entries = list
        shardCount = header.shards
        shards = files
    }

    private static func fiveDigits(_ n: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, 5 - s.count)) + s
    }

    private static func entry(_ e: Tensorflow__BundleEntryProto, key: String, index: String) throws(TensorFlowError) -> Entry {
        guard e.n_slices == 0 else {
            throw .badTensor(path: index, tensor: key, reason: "is a partitioned variable (stored in slices), which DLKit does not read yet")
        }
        guard let dtype = TFDataType.dtype(e.dtype) else {
            throw .badTensor(path: index, tensor: key, reason: "has \(TFDataType.name(e.dtype)), which DLKit does not hold")
        }
        guard let shape = PB.dims(e.shape), !shape.contains(where: { $0 < 0 }) else {
            throw .badTensor(path: index, tensor: key, reason: "has an invalid shape")
        }
        guard e.shard_id >= 0, e.offset >= 0, e.size >= 0, e.offset <= Int64(Int.max) - e.size else {
            throw .badTensor(path: index, tensor: key, reason: "has an invalid location (shard \(e.shard_id), offset \(e.offset), size \(e.size))")
        }
        if dtype != .string {
            var n = 1
            for d in shape {
                let (m, o) = n.multipliedReportingOverflow(by: d)
                guard !o else { throw .badTensor(path: index, tensor: key, reason: "shape \(shape) overflows") }
                n = m
            }
            let (bytes, o) = n.multipliedReportingOverflow(by: dtype.byteWidth)
            guard !o, Int64(bytes) == e.size else {
                throw .badTensor(path: index, tensor: key, reason: "is \(e.size) bytes but \(dtype) \(shape) needs \(o ? "more than Int.max" : String(bytes))")
            }
        }
        return Entry(key: key, dtype: dtype, shape: shape, shard: Int(e.shard_id), offset: Int(e.offset),
                     size: Int(e.size), crc32c: e.crc32c)
    }

    /// The shard bytes of `e`, checked against the entry's CRC-32C.
    private func bytes(_ e: Entry) throws(TensorFlowError) -> (MappedFile, UnsafeRawBufferPointer) {
        guard let file = shards[e.shard] else {
            throw .badTensor(path: indexPath, tensor: e.key, reason: "its shard \(e.shard) is missing")
        }
        guard e.offset <= file.byteCount, e.size <= file.byteCount - e.offset else {
            throw .badTensor(path: file.path, tensor: e.key, reason: "\(e.size) bytes at offset \(e.offset) run past the end of the shard (\(file.byteCount) bytes; truncated?)")
        }
        let b = UnsafeRawBufferPointer(rebasing: file.bytes[e.offset..<(e.offset + e.size)])
        return (file, b)
    }

    private func checksumMismatch(_ e: Entry, _ file: MappedFile) -> TensorFlowError {
        .badTensor(path: file.path, tensor: e.key, reason: "the data fails its CRC32C check (corrupt)")
    }

    /// The numeric tensor `e`: a view into its shard, its checksum verified.
    public func tensor(_ e: Entry) throws(TensorFlowError) -> Tensor {
        guard e.dtype != .string else { throw .badTensor(path: indexPath, tensor: e.key, reason: "holds strings, not numbers") }
        let (file, b) = try bytes(e)
        guard CRC32C.mask(CRC32C.checksum(b)) == e.crc32c else { throw checksumMismatch(e, file) }
        do { return try Tensor(dtype: e.dtype, shape: e.shape, viewing: file, offset: e.offset) } catch {
            throw .badTensor(path: file.path, tensor: e.key, reason: "\(error)")
        }
    }

    /// The elements of the string tensor `e`: varint64 lengths, a masked CRC-32C of the lengths
    /// (each as a little-endian uint32), then the bytes. The entry's checksum covers the lengths
    /// as uint32, that stored checksum, and the bytes.
    public func strings(_ e: Entry) throws(TensorFlowError) -> [[UInt8]] {
        guard e.dtype == .string else { throw .badTensor(path: indexPath, tensor: e.key, reason: "holds \(e.dtype), not strings") }
        let (file, b) = try bytes(e)
        var count = 1
        for d in e.shape { count = d == 0 || count <= b.count / d ? count * d : b.count + 1 }
        guard count <= b.count else { throw .badTensor(path: file.path, tensor: e.key, reason: "\(count) strings cannot fit \(b.count) bytes") }
        var r = ByteReader(b)
        var lengths: [Int] = []
        var lengthBytes: [UInt8] = []
        lengths.reserveCapacity(count)
        for _ in 0..<count {
            var v: UInt64 = 0, shift: UInt64 = 0, done = false
            while shift < 64, let byte = try? r.readUInt8() {
                v |= UInt64(byte & 0x7F) << shift
                shift += 7
                if byte & 0x80 == 0 { done = true; break }
            }
            guard done, v <= UInt64(b.count) else { throw .badTensor(path: file.path, tensor: e.key, reason: "a string length is malformed") }
            lengths.append(Int(v))
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { lengthBytes.append(contentsOf: $0) }
        }
        guard let stored = try? r.readLE(UInt32.self) else { throw .badTensor(path: file.path, tensor: e.key, reason: "the string lengths are truncated") }
        let lengthCRC = lengthBytes.withUnsafeBytes { CRC32C.checksum($0) }
        guard CRC32C.mask(lengthCRC) == stored else { throw checksumMismatch(e, file) }
        var crc = withUnsafeBytes(of: stored.littleEndian) { CRC32C.update(lengthCRC, $0) }
        var out: [[UInt8]] = []
        for n in lengths {
            guard let s = try? r.readBytes(n) else { throw .badTensor(path: file.path, tensor: e.key, reason: "the string bytes run past the entry") }
            crc = CRC32C.update(crc, s)
            out.append(Array(s))
        }
        guard r.isAtEnd, CRC32C.mask(crc) == e.crc32c else { throw checksumMismatch(e, file) }
        return out
    }

    /// Every numeric tensor under its checkpoint key. String entries such as the object graph
    /// are checked but left out: they are metadata, not weights.
    public func tensors() throws(TensorFlowError) -> NamedTensors {
        var out = NamedTensors()
        for e in entries {
            if e.dtype == .string { _ = try strings(e) } else { out[e.key] = try tensor(e) }
        }
        return out
    }

    /// Whether `bytes` look like a checkpoint index (they end in the table magic number).
    public static func isIndex(_ bytes: UnsafeRawBufferPointer) -> Bool { Table.hasMagic(bytes) }

    public func entry(_ key: String) -> Entry? { entries.first { $0.key == key } }
}

/// Unpacks one protobuf message from `bytes` (which may be empty: every field absent).
func unpack<T>(_ bytes: UnsafeRawBufferPointer,
               _ fn: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<T>?) -> UnsafeMutablePointer<T>? {
    if let p = bytes.baseAddress, !bytes.isEmpty { return fn(nil, bytes.count, p.assumingMemoryBound(to: UInt8.self)) }
    var zero: UInt8 = 0
    return fn(nil, 0, &zero)
}
