/// Reads little-endian numbers and byte ranges from a buffer, never past its end.
///
/// Every read checks the remaining length first and throws `ByteReaderError.truncated` with the
/// offset it wanted, so a reader of hostile files can never index outside the buffer.
package struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func readUInt8() throws(ByteReaderError) -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readLE<T: FixedWidthInteger>(_: T.Type = T.self) throws(ByteReaderError) -> T {
        let n = MemoryLayout<T>.size
        try need(n)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]))
        }
        offset += n
        return T(littleEndian: v)
    }

    public mutating func readBytes(_ count: Int) throws(ByteReaderError) -> UnsafeRawBufferPointer {
        guard count >= 0 else { throw .truncated(offset: offset, wanted: count, available: remaining) }
        try need(count)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    public mutating func skip(_ count: Int) throws(ByteReaderError) {
        _ = try readBytes(count)
    }

    public mutating func seek(to position: Int) throws(ByteReaderError) {
        guard position >= 0, position <= bytes.count else {
            throw .truncated(offset: position, wanted: 0, available: bytes.count)
        }
        offset = position
    }

    private func need(_ n: Int) throws(ByteReaderError) {
        if n > remaining { throw .truncated(offset: offset, wanted: n, available: max(remaining, 0)) }
    }
}

public enum ByteReaderError: Error, CustomStringConvertible, Equatable {
    case truncated(offset: Int, wanted: Int, available: Int)

    public var description: String {
        switch self {
        case .truncated(let o, let w, let a):
            "needs \(w) bytes at offset \(o) but only \(a) remain: the data is truncated"
        }
    }
}
