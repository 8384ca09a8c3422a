/// Why a FlatBuffer cannot be read: where (the object being read and the byte offset) and what.
public struct FlatBufferError: Error, Sendable, Equatable {
    /// The object being read, e.g. "subgraph 0 tensor 3 ('conv/w')".
    public var object: String
    public var offset: Int
    public var reason: String
}

/// A read-only, bounds-checked view of a FlatBuffer (little-endian). Every offset, vtable and
/// vector is checked against the buffer before it is read; nothing here can read outside it.
///
/// Layout facts (FlatBuffers' binary format): the buffer starts with a u32 offset to the root
/// table; bytes 4..<8 hold the file identifier when one is declared. A table starts with an i32
/// `soffset`; its vtable is at `table - soffset` and holds u16 vtable size, u16 table size, then
/// one u16 per field id (0 = absent, otherwise the field's offset from the table start). A field
/// holding a table, vector or string stores a u32 offset relative to the field's own position.
/// A vector or string is a u32 element count followed by the elements (strings add a NUL).
struct FlatBuffer {
    let bytes: UnsafeRawBufferPointer

    var count: Int { bytes.count }

    func fail(_ object: String, _ offset: Int, _ reason: String) -> FlatBufferError {
        FlatBufferError(object: object, offset: offset, reason: reason)
    }

    /// Checks that `size` bytes at `offset` lie inside the buffer.
    func check(_ offset: Int, _ size: Int, _ object: String) throws(FlatBufferError) {
        guard offset >= 0, size >= 0, offset <= count, size <= count - offset else {
            throw fail(object, offset, "needs \(size) bytes but the file has \(count) (truncated, or an offset is wrong)")
        }
    }

    func load<T: FixedWidthInteger>(_ offset: Int, as: T.Type, _ object: String) throws(FlatBufferError) -> T {
        try check(offset, MemoryLayout<T>.size, object)
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Follows a u32 forward offset stored at `at`.
    func follow(_ at: Int, _ object: String) throws(FlatBufferError) -> Int {
        let rel = try load(at, as: UInt32.self, object)
        let (target, o) = at.addingReportingOverflow(Int(rel))
        guard !o, target < count else {
            throw fail(object, at, "points to byte \(target), past the end of the file (\(count) bytes)")
        }
        return target
    }

    /// The root table.
    func root(_ object: String) throws(FlatBufferError) -> FlatTable {
        try table(at: try follow(0, object), object)
    }

    /// The 4 identifier bytes at 4..<8, or nil when the buffer is too short.
    var identifier: String? {
        guard count >= 8 else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[4..<8]), as: UTF8.self)
    }

    func table(at pos: Int, _ object: String) throws(FlatBufferError) -> FlatTable {
        guard pos % 4 == 0 else { throw fail(object, pos, "table is not 4-byte aligned") }
        let soffset = try load(pos, as: Int32.self, object)
        let (vt, o) = pos.subtractingReportingOverflow(Int(soffset))
        guard !o, vt >= 0, vt <= count - 4, vt % 2 == 0 else {
            throw fail(object + " vtable", pos, "the table's vtable offset \(soffset) points to byte \(vt), outside the file (\(count) bytes)")
        }
        let vtSize = Int(try load(vt, as: UInt16.self, object))
        let tableSize = Int(try load(vt + 2, as: UInt16.self, object))
        guard vtSize >= 4, vtSize % 2 == 0 else { throw fail(object, vt, "vtable size \(vtSize) is invalid") }
        try check(vt, vtSize, object + " vtable")
        guard tableSize >= 4 else { throw fail(object, vt, "table size \(tableSize) is invalid") }
        try check(pos, tableSize, object)
        return FlatTable(buffer: self, position: pos, vtable: vt, fieldCount: (vtSize - 4) / 2, size: tableSize, object: object)
    }
}

/// One table of a FlatBuffer: fields by id, each checked to lie inside the table.
struct FlatTable {
    let buffer: FlatBuffer
    let position: Int
    let vtable: Int
    let fieldCount: Int
    let size: Int
    let object: String

    /// The absolute offset of field `id`, or nil when the field is absent.
    func field(_ id: Int, width: Int) throws(FlatBufferError) -> Int? {
        guard id < fieldCount else { return nil }
        let rel = Int(try buffer.load(vtable + 4 + 2 * id, as: UInt16.self, object))
        guard rel != 0 else { return nil }
        guard rel + width <= size else {
            throw buffer.fail(object, position, "field \(id) at +\(rel) runs past the table's \(size) bytes")
        }
        return position + rel
    }

    func scalar<T: FixedWidthInteger>(_ id: Int, _ defaultValue: T) throws(FlatBufferError) -> T {
        guard let at = try field(id, width: MemoryLayout<T>.size) else { return defaultValue }
        return try buffer.load(at, as: T.self, object)
    }

    func float(_ id: Int, _ defaultValue: Float) throws(FlatBufferError) -> Float {
        guard let at = try field(id, width: 4) else { return defaultValue }
        return Float(bitPattern: try buffer.load(at, as: UInt32.self, object))
    }

    func bool(_ id: Int, _ defaultValue: Bool = false) throws(FlatBufferError) -> Bool {
        try scalar(id, UInt8(defaultValue ? 1 : 0)) != 0
    }

    func table(_ id: Int, _ object: String) throws(FlatBufferError) -> FlatTable? {
        guard let at = try field(id, width: 4) else { return nil }
        return try buffer.table(at: try buffer.follow(at, object), object)
    }

    func vector(_ id: Int, elementSize: Int, _ object: String) throws(FlatBufferError) -> FlatVector? {
        guard let at = try field(id, width: 4) else { return nil }
        let start = try buffer.follow(at, object)
        let n = Int(try buffer.load(start, as: UInt32.self, object))
        let (bytes, o) = n.multipliedReportingOverflow(by: elementSize)
        guard !o else { throw buffer.fail(object, start, "vector of \(n) elements overflows") }
        guard bytes <= buffer.count - (start + 4) else {
            throw buffer.fail(object, start, "vector of \(n) elements (\(bytes) bytes) runs past the end of the file (\(buffer.count) bytes)")
        }
        return FlatVector(buffer: buffer, start: start + 4, count: n, elementSize: elementSize, object: object)
    }

    func string(_ id: Int, _ object: String) throws(FlatBufferError) -> String? {
        guard let v = try vector(id, elementSize: 1, object) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer.bytes[v.start..<(v.start + v.count)]), as: UTF8.self)
    }

    func ints<T: FixedWidthInteger>(_ id: Int, as: T.Type, _ object: String) throws(FlatBufferError) -> [T]? {
        guard let v = try vector(id, elementSize: MemoryLayout<T>.size, object) else { return nil }
        var out: [T] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count { out.append(try buffer.load(v.start + i * v.elementSize, as: T.self, object)) }
        return out
    }

    func floats(_ id: Int, _ object: String) throws(FlatBufferError) -> [Float]? {
        try ints(id, as: UInt32.self, object).map { $0.map(Float.init(bitPattern:)) }
    }

    /// The tables of a vector of tables; `name(i)` names element i in errors.
    func tables(_ id: Int, _ object: String, name: (Int) -> String) throws(FlatBufferError) -> [FlatTable] {
        guard let v = try vector(id, elementSize: 4, object) else { return [] }
        var out: [FlatTable] = []
        out.reserveCapacity(v.count)
        for i in 0..<v.count {
            let n = name(i)
            out.append(try buffer.table(at: try buffer.follow(v.start + 4 * i, n), n))
        }
        return out
    }
}

/// A vector's elements: `count` of `elementSize` bytes from `start`, inside the buffer.
struct FlatVector {
    let buffer: FlatBuffer
    let start: Int
    let count: Int
    let elementSize: Int
    let object: String
}
