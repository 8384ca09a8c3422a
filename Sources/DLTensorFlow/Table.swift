import DLSupport
import DLTensor

/// Reads the sorted string table TensorFlow writes as a checkpoint's `.index` (the leveldb table
/// layout): data blocks of prefix-compressed key/value entries with restart points, each block
/// followed by a 1-byte compression type and a masked CRC-32C of block and type; an index block
/// whose entries point at the data blocks; a metaindex block; and a 48-byte footer (two block
/// handles padded to 40 bytes, then the magic number `0xdb4775248b80fb57`, little-endian).
///
/// Every offset and length is checked against the file before it is used, and every block's
/// checksum before its entries are read. Only uncompressed blocks are accepted: TensorFlow
/// writes the index uncompressed; a snappy-compressed block is refused by name.
struct Table {
    static let magic: UInt64 = 0xDB47_7524_8B80_FB57
    static let footerSize = 48
    static let trailerSize = 5

    let path: String
    let bytes: UnsafeRawBufferPointer

    /// Whether `bytes` end in the table magic (format detection).
    static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= footerSize else { return false }
        var m: UInt64 = 0
        for i in 0..<8 { m |= UInt64(bytes[bytes.count - 8 + i]) << (8 * UInt64(i)) }
        return m == magic
    }

    /// Every key/value entry of the table, in key order. Values are views into `bytes`.
    func entries() throws(TensorFlowError) -> [(key: [UInt8], value: UnsafeRawBufferPointer)] {
        guard bytes.count >= Self.footerSize else {
            throw .badTable(path: path, reason: "the file is \(bytes.count) bytes, shorter than the 48-byte footer")
        }
        guard Self.hasMagic(bytes) else { throw .badTable(path: path, reason: "the footer magic number is wrong (not a table, or truncated)") }
        let footerStart = bytes.count - Self.footerSize
        var r = ByteReader(bytes, offset: footerStart)
        _ = try handle(&r, what: "the footer's metaindex handle")
        let index = try handle(&r, what: "the footer's index handle")
        guard r.offset <= bytes.count - 8 else { throw .badTable(path: path, reason: "the footer's block handles run into the magic number") }
        var out: [(key: [UInt8], value: UnsafeRawBufferPointer)] = []
        var previousKey: [UInt8]? = nil
        for (indexKey, value) in try block(index, what: "the index block", limit: footerStart) {
            var hr = ByteReader(value)
            let data = try handle(&hr, what: "the index entry '\(printable(indexKey))'")
            for (k, v) in try block(data, what: "the data block at byte \(data.offset)", limit: footerStart) {
                if let p = previousKey, !p.lexicographicallyPrecedes(k) {
                    throw .badTable(path: path, reason: "key '\(printable(k))' in the data block at byte \(data.offset) is out of order")
                }
                previousKey = k
                out.append((k, v))
            }
        }
        return out
    }

    private struct Handle { var offset: Int; var size: Int }

    private func handle(_ r: inout ByteReader, what: String) throws(TensorFlowError) -> Handle {
        guard let o = varint(&r), let s = varint(&r), o <= UInt64(Int.max), s <= UInt64(Int.max) else {
            throw .badTable(path: path, reason: "\(what) is not a valid block handle")
        }
        return Handle(offset: Int(o), size: Int(s))
    }

    /// The checked contents of the block at `h` parsed into entries.
    private func block(_ h: Handle, what: String, limit: Int) throws(TensorFlowError) -> [([UInt8], UnsafeRawBufferPointer)] {
        guard h.offset <= limit, h.size <= limit - h.offset, Self.trailerSize <= limit - h.offset - h.size else {
            throw .badTable(path: path, reason: "\(what) (\(h.size) bytes at byte \(h.offset)) runs past the end of the table (\(bytes.count) bytes)")
        }
        let contents = UnsafeRawBufferPointer(rebasing: bytes[h.offset..<(h.offset + h.size)])
        let type = bytes[h.offset + h.size]
        var stored: UInt32 = 0
        for i in 0..<4 { stored |= UInt32(bytes[h.offset + h.size + 1 + i]) << (8 * UInt32(i)) }
        let crc = CRC32C.update(CRC32C.checksum(contents), UnsafeRawBufferPointer(rebasing: bytes[(h.offset + h.size)..<(h.offset + h.size + 1)]))
        guard CRC32C.mask(crc) == stored else {
            throw .badTable(path: path, reason: "\(what) fails its CRC32C check (corrupt)")
        }
        switch type {
        case 0: break
        case 1: throw .badTable(path: path, reason: "\(what) is snappy-compressed; DLKit reads only uncompressed tables (TensorFlow writes checkpoint indexes uncompressed)")
        default: throw .badTable(path: path, reason: "\(what) has unknown compression type \(type)")
        }
        return try parse(contents, what: what)
    }

    /// Entries: varint shared key bytes, varint unshared bytes, varint value length, the key
    /// suffix, the value; then the restart offsets (uint32 each) and their count (uint32).
    private func parse(_ b: UnsafeRawBufferPointer, what: String) throws(TensorFlowError) -> [([UInt8], UnsafeRawBufferPointer)] {
        guard b.count >= 4 else { throw .badTable(path: path, reason: "\(what) is \(b.count) bytes, too short for its restart count") }
        var n: UInt32 = 0
        for i in 0..<4 { n |= UInt32(b[b.count - 4 + i]) << (8 * UInt32(i)) }
        guard n >= 1, Int(n) <= (b.count - 4) / 4 else {
            throw .badTable(path: path, reason: "\(what) claims \(n) restart points, which do not fit its \(b.count) bytes")
        }
        let end = b.count - 4 - 4 * Int(n)
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: b[0..<end]))
        var key: [UInt8] = []
        var out: [([UInt8], UnsafeRawBufferPointer)] = []
        while !r.isAtEnd {
            let at = r.offset
            guard let shared = varint(&r), let unshared = varint(&r), let valueLength = varint(&r),
                  shared <= UInt64(key.count), unshared <= UInt64(r.remaining),
                  valueLength <= UInt64(r.remaining) - unshared else {
                throw .badTable(path: path, reason: "\(what): the entry at byte \(at) is malformed (its lengths run past the block)")
            }
            guard let suffix = try? r.readBytes(Int(unshared)), let value = try? r.readBytes(Int(valueLength)) else {
                throw .badTable(path: path, reason: "\(what): the entry at byte \(at) is truncated")
            }
            key.removeSubrange(Int(shared)...)
            key.append(contentsOf: suffix)
            out.append((key, value))
        }
        return out
    }

    private func varint(_ r: inout ByteReader) -> UInt64? {
        var v: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let b = try? r.readUInt8() else { return nil }
            v |= UInt64(b & 0x7F) << UInt64(shift)
            if b & 0x80 == 0 { return v }
        }
        return nil
    }
}

/// A key for messages: its bytes as UTF-8 (repaired), at most 200 characters.
func printable(_ key: [UInt8]) -> String {
    let s = String(decoding: key, as: UTF8.self)
    return s.count > 200 ? String(s.prefix(200)) + "..." : s
}
