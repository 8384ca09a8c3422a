/// A value to write into a FlatBuffer table field.
indirect enum FlatValue {
    case int8(Int8), uint8(UInt8), int32(Int32), uint32(UInt32), float(Float)
    case table(FlatObject)
    case tables([FlatObject])
    case string(String)
    case int32s([Int32])
    case floats([Float])
    case int64s([Int64])
    /// Raw bytes (a `[ubyte]` vector) whose data starts at a multiple of `alignment`.
    case bytes([UInt8], alignment: Int)
}

/// A table to write: its present fields by id (absent ids are left out of the vtable).
struct FlatObject {
    var fields: [(id: Int, value: FlatValue)]

    init(_ fields: [(Int, FlatValue?)]) {
        self.fields = fields.compactMap { id, v in v.map { (id, $0) } }
    }
}

/// Writes a FlatBuffer front to back: a table is written (its vtable just before it), then the
/// objects it points to after it, each offset slot patched once its target's position is known.
/// Every offset therefore points forward, as the format requires (`FlatBuffer` reads the layout).
struct FlatBufferBuilder {
    private(set) var bytes: [UInt8] = []

    /// The finished buffer: root offset, `identifier`, then the root table and everything below it.
    static func build(root: FlatObject, identifier: String) -> [UInt8] {
        var b = FlatBufferBuilder()
        b.bytes = [UInt8](repeating: 0, count: 8)
        for (i, c) in identifier.utf8.prefix(4).enumerated() { b.bytes[4 + i] = c }
        let at = b.write(root)
        b.patch(0, to: at)
        return b.bytes
    }

    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func set<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { b in for (i, x) in b.enumerated() { bytes[offset + i] = x } }
    }

    /// Stores at `slot` the forward offset from `slot` to `target`.
    mutating func patch(_ slot: Int, to target: Int) {
        set(UInt32(target - slot), at: slot)
    }

    static func width(_ v: FlatValue) -> Int {
        switch v {
        case .int8, .uint8: 1
        default: 4
        }
    }

    /// Writes a table and its children; returns the table's position.
    mutating func write(_ object: FlatObject) -> Int {
        let fields = object.fields.sorted { Self.width($0.value) > Self.width($1.value) }
        // Layout of the table body after the 4-byte soffset: 4-byte fields first, then 1-byte ones.
        var offsets: [Int: Int] = [:]
        var size = 4
        for f in fields {
            let w = Self.width(f.value)
            while size % w != 0 { size += 1 }
            offsets[f.id] = size
            size += w
        }
        let maxId = object.fields.map(\.id).max() ?? -1
        // vtable: u16 vtable size, u16 table size, one u16 per field id up to the largest.
        pad(to: 2)
        let vtable = bytes.count
        put(UInt16(4 + 2 * (maxId + 1)))
        put(UInt16(size))
        for id in 0...max(maxId, 0) where maxId >= 0 { put(UInt16(offsets[id] ?? 0)) }
        pad(to: 4)
        let table = bytes.count
        bytes.append(contentsOf: [UInt8](repeating: 0, count: size))
        set(Int32(table - vtable), at: table)
        var children: [(slot: Int, value: FlatValue)] = []
        for f in fields {
            guard let o = offsets[f.id] else { continue }
            let at = table + o
            switch f.value {
            case .int8(let v): set(v, at: at)
            case .uint8(let v): set(v, at: at)
            case .int32(let v): set(v, at: at)
            case .uint32(let v): set(v, at: at)
            case .float(let v): set(v.bitPattern, at: at)
            default: children.append((at, f.value))
            }
        }
        for (slot, value) in children { patch(slot, to: writeChild(value)) }
        return table
    }

    /// Writes a vector, string or table; returns the position its offset must point to.
    mutating func writeChild(_ v: FlatValue) -> Int {
        switch v {
        case .table(let t):
            return write(t)
        case .tables(let ts):
            pad(to: 4)
            let start = bytes.count
            put(UInt32(ts.count))
            let slots = bytes.count
            bytes.append(contentsOf: [UInt8](repeating: 0, count: 4 * ts.count))
            for (i, t) in ts.enumerated() { patch(slots + 4 * i, to: write(t)) }
            return start
        case .string(let s):
            pad(to: 4)
            let start = bytes.count
            put(UInt32(s.utf8.count))
            bytes.append(contentsOf: Array(s.utf8) + [0])
            return start
        case .int32s(let xs):
            pad(to: 4)
            let start = bytes.count
            put(UInt32(xs.count))
            for x in xs { put(x) }
            return start
        case .floats(let xs):
            pad(to: 4)
            let start = bytes.count
            put(UInt32(xs.count))
            for x in xs { put(x.bitPattern) }
            return start
        case .int64s(let xs):
            // The elements (after the 4-byte count) start at a multiple of 8.
            while (bytes.count + 4) % 8 != 0 { bytes.append(0) }
            let start = bytes.count
            put(UInt32(xs.count))
            for x in xs { put(x) }
            return start
        case .bytes(let data, let alignment):
            while (bytes.count + 4) % max(alignment, 4) != 0 { bytes.append(0) }
            let start = bytes.count
            put(UInt32(data.count))
            bytes.append(contentsOf: data)
            return start
        case .int8, .uint8, .int32, .uint32, .float:
            preconditionFailure("scalars are written inline")
        }
    }
}
