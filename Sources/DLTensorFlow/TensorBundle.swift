import CTensorFlowProtos
import DLSupport
import DLTensor

/// A TensorFlow checkpoint (tensor bundle): `PREFIX.index`, a table mapping each checkpoint key
/// to a `BundleEntryProto` (dtype, shape, shard, offset, size, CRC-32C) plus a header entry under
/// the empty key (`BundleHeaderProto`: shard count, endianness, version), and the shards
/// `PREFIX.data-NNNNN-of-MMMMM` holding the bytes.
///
/// Numeric tensors are memory-mapped views of the shards (nothing copied) after their checksum
/// is verified. A partitioned variable (saved by tf.compat.v1 partitioners) has a full-tensor
/// entry that lists its slices and holds no bytes, and one entry per slice under a key encoded
/// with TensorFlow's "ordered code" (`SliceKey`); it is read whole, its slices assembled.
public struct TensorBundle: Sendable {
    public struct Entry: Sendable {
        public let key: String
        public let dtype: DType
        public let shape: [Int]
        public let shard: Int
        public let offset: Int
        public let size: Int
        let crc32c: UInt32
        /// For a partitioned variable: per slice, (start, length) along every axis; `whole`: the
        /// extent named no length (the whole axis, keyed as length -1).
        public let slices: [[(start: Int, length: Int, whole: Bool)]]
    }

    /// The path of the `.index` file.
    public let indexPath: String
    /// Entries in key order (the header excluded).
    public let entries: [Entry]
    public let shardCount: Int
    private let shards: [Int: MappedFile]
    /// The slices of partitioned variables, by their encoded keys.
    private let sliceEntries: [[UInt8]: Entry]

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
        var slices: [[UInt8]: Entry] = [:]
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
            let entry = try Self.entry(e.pointee, key: key.first == 0 ? SliceKey.describe(key) : name, index: index)
            // Keys beginning with a 0 byte (ordered code's number 0) are slices of a partitioned variable.
            if key.first == 0 { slices[key] = entry } else { list.append(entry) }
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
            guard list.contains(where: { $0.shard == i && $0.slices.isEmpty }) || slices.values.contains(where: { $0.shard == i }) else { continue }
            do { files[i] = try MappedFile(path: shard) } catch let e as MappedFileError {
                throw .cannotRead(path: shard, reason: e.reason)
            } catch { throw .cannotRead(path: shard, reason: "\(error)") }
        }
        for e in list + slices.values where e.shard >= header.shards {
            throw .badTensor(path: index, tensor: e.key, reason: "shard \(e.shard) is outside the \(header.shards) shards")
        }
        entries = list
        shardCount = header.shards
        shards = files
        sliceEntries = slices
    }

    private static func fiveDigits(_ n: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, 5 - s.count)) + s
    }

    private static func entry(_ e: Tensorflow__BundleEntryProto, key: String, index: String) throws(TensorFlowError) -> Entry {
        guard let dtype = TFDataType.dtype(e.dtype) else {
            throw .badTensor(path: index, tensor: key, reason: "has \(TFDataType.name(e.dtype)), which DLKit does not hold")
        }
        guard let shape = PB.dims(e.shape), !shape.contains(where: { $0 < 0 }) else {
            throw .badTensor(path: index, tensor: key, reason: "has an invalid shape")
        }
        guard e.shard_id >= 0, e.offset >= 0, e.size >= 0, e.offset <= Int64(Int.max) - e.size else {
            throw .badTensor(path: index, tensor: key, reason: "has an invalid location (shard \(e.shard_id), offset \(e.offset), size \(e.size))")
        }
        var slices: [[(start: Int, length: Int, whole: Bool)]] = []
        for i in 0..<e.n_slices {
            guard let sp = e.slices[i]?.pointee, sp.n_extent == shape.count else {
                throw .badTensor(path: index, tensor: key, reason: "slice \(i) does not have one extent per axis of \(shape)")
            }
            var extents: [(start: Int, length: Int, whole: Bool)] = []
            for (axis, dim) in shape.enumerated() {
                guard let x = sp.extent[axis]?.pointee else { throw .badTensor(path: index, tensor: key, reason: "slice \(i) lacks an extent") }
                let full = x.has_length_hack_case != TENSORFLOW__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_HACK_LENGTH
                let length = full ? Int64(dim) - x.start : x.length
                guard x.start >= 0, length >= 0, x.start <= Int64(dim) - length else {
                    throw .badTensor(path: index, tensor: key, reason: "slice \(i) extent \(x.start)+\(length) leaves axis \(axis) of \(shape)")
                }
                extents.append((Int(x.start), Int(length), full))
            }
            slices.append(extents)
        }
        if slices.isEmpty, dtype != .string {
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
                     size: Int(e.size), crc32c: e.crc32c, slices: slices)
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

    /// The numeric tensor `e`: a view into its shard, its checksum verified; a partitioned
    /// variable assembled from its slices (each checked).
    public func tensor(_ e: Entry) throws(TensorFlowError) -> Tensor {
        guard e.dtype != .string else { throw .badTensor(path: indexPath, tensor: e.key, reason: "holds strings, not numbers") }
        if !e.slices.isEmpty { return try assembled(e) }
        let (file, b) = try bytes(e)
        guard CRC32C.mask(CRC32C.checksum(b)) == e.crc32c else { throw checksumMismatch(e, file) }
        do { return try Tensor(dtype: e.dtype, shape: e.shape, viewing: file, offset: e.offset) } catch {
            throw .badTensor(path: file.path, tensor: e.key, reason: "\(error)")
        }
    }

    /// A partitioned variable: every slice read and copied to its place; together the slices
    /// must hold as many elements as the variable.
    private func assembled(_ e: Entry) throws(TensorFlowError) -> Tensor {
        let width = e.dtype.byteWidth
        let (count, o) = e.shape.reduce((1, false)) { acc, d in
            let (m, over) = acc.0.multipliedReportingOverflow(by: d)
            return (m, acc.1 || over)
        }
        guard !o, count <= (1 << 40) / max(width, 1) else { throw .badTensor(path: indexPath, tensor: e.key, reason: "shape \(e.shape) is too large") }
        // Every slice found and in bounds, and their sizes adding up, before anything is allocated.
        var parts: [([(start: Int, length: Int, whole: Bool)], Entry)] = []
        var covered = 0
        for extents in e.slices {
            let key = SliceKey.encode(name: Array(e.key.utf8), extents: extents)
            guard let part = sliceEntries[key] else {
                throw .badTensor(path: indexPath, tensor: e.key, reason: "slice \(SliceKey.describe(key)) has no entry")
            }
            let lengths = extents.map(\.length)
            guard part.dtype == e.dtype, part.shape == lengths, part.slices.isEmpty else {
                throw .badTensor(path: indexPath, tensor: e.key, reason: "slice \(part.key) is \(part.dtype) \(part.shape), expected \(e.dtype) \(lengths)")
            }
            _ = try bytes(part)
            covered += part.size / max(width, 1)
            parts.append((extents, part))
        }
        guard covered == count else {
            throw .badTensor(path: indexPath, tensor: e.key, reason: "its slices hold \(covered) elements, the variable \(count)")
        }
        var out = [UInt8](repeating: 0, count: count * width)
        // Row-major strides of the full tensor, in elements.
        var strides = [Int](repeating: 1, count: e.shape.count)
        for axis in stride(from: e.shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * e.shape[axis + 1] }
        for (extents, part) in parts {
            let lengths = extents.map(\.length)
            let t = try tensor(part)
            let n = lengths.reduce(1, *)
            guard n > 0 else { continue }
            // Contiguous runs along the last axis; the leading axes counted like an odometer.
            let last = lengths.last ?? 1, run = last * width
            var index = [Int](repeating: 0, count: max(0, lengths.count - 1))
            t.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    guard let to = dst.baseAddress, let from = src.baseAddress else { return }
                    for r in 0..<(n / last) {
                        var at = extents.last?.start ?? 0
                        for (axis, i) in index.enumerated() { at += (extents[axis].start + i) * strides[axis] }
                        to.advanced(by: at * width).copyMemory(from: from.advanced(by: r * run), byteCount: run)
                        var axis = index.count - 1
                        while axis >= 0 {
                            index[axis] += 1
                            if index[axis] < lengths[axis] { break }
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
        do { return try out.withUnsafeBytes { b throws(TensorError) in try Tensor(dtype: e.dtype, shape: e.shape, bytes: b) } } catch {
            throw .badTensor(path: indexPath, tensor: e.key, reason: "\(error)")
        }
    }

    /// One part of a partitioned variable as a TF1 graph names it: `NAME/part_K` is the K-th
    /// slice of NAME's entry in order of position (tf.compat.v1 numbers the parts so); nil when
    /// `key` names no such part.
    public func part(_ key: String) throws(TensorFlowError) -> Tensor? {
        guard let r = key.range(of: "/part_", options: .backwards), let k = Int(key[r.upperBound...]), k >= 0,
              let whole = entry(String(key[..<r.lowerBound])), k < whole.slices.count else { return nil }
        let ordered = whole.slices.sorted { a, b in a.map(\.start).lexicographicallyPrecedes(b.map(\.start)) }
        let sliceKey = SliceKey.encode(name: Array(whole.key.utf8), extents: ordered[k])
        guard let e = sliceEntries[sliceKey] else {
            throw .badTensor(path: indexPath, tensor: key, reason: "slice \(SliceKey.describe(sliceKey)) has no entry")
        }
        return try tensor(e)
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
            if e.dtype == .string && e.slices.isEmpty { _ = try strings(e) } else { out[e.key] = try tensor(e) }
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

/// Keys of the slices of a partitioned variable, in TensorFlow's "ordered code": the number 0,
/// the variable's name as an escaped string, its rank, then per axis the slice's start and length
/// as signed numbers (-1: the whole axis). Numbers: a length byte, then the value's big-endian
/// bytes; signed numbers: the value's two's-complement bytes, as few as hold it, whose leading
/// bits say how many follow; strings: 0x00 written 0x00 0xFF, 0xFF written 0xFF 0x00, ended by 0x00 0x01.
enum SliceKey {
    static func encode(name: [UInt8], extents: [(start: Int, length: Int, whole: Bool)]) -> [UInt8] {
        var out = unsigned(0)
        for b in name {
            switch b {
            case 0x00: out += [0x00, 0xFF]
            case 0xFF: out += [0xFF, 0x00]
            default: out.append(b)
            }
        }
        out += [0x00, 0x01]
        out += unsigned(UInt64(extents.count))
        for x in extents { out += signed(Int64(x.start)) + signed(x.whole ? -1 : Int64(x.length)) }
        return out
    }

    static func unsigned(_ v: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        var x = v
        while x > 0 { bytes.insert(UInt8(x & 0xFF), at: 0); x >>= 8 }
        return [UInt8(bytes.count)] + bytes
    }

    /// One byte for |v| < 64; each further byte 7 more bits; up to 10 bytes.
    static func signed(_ v: Int64) -> [UInt8] {
        let x = v < 0 ? ~v : v
        if x < 64 { return [0x80 ^ UInt8(truncatingIfNeeded: v)] }
        var length = 2
        while length < 10 && x >> (7 * length - 1) != 0 { length += 1 }
        var buf = [UInt8](repeating: v < 0 ? 0xFF : 0x00, count: 10)
        withUnsafeBytes(of: v.bigEndian) { for (i, b) in $0.enumerated() { buf[2 + i] = b } }
        let header: [(UInt8, UInt8)] = [(0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0), (0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0)]
        buf[10 - length] ^= header[length].0
        buf[11 - length] ^= header[length].1
        return Array(buf[(10 - length)...])
    }

    /// A slice key for messages: the printable bytes, others as \xNN.
    static func describe(_ key: [UInt8]) -> String {
        key.prefix(200).map { (0x21...0x7E).contains($0) ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
    }
}
