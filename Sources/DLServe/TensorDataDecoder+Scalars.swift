#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLTensor

// The number parser of request data: each element type reads its own JSON token (floats through
// `NumberText`, correctly rounded; integers whole and in range; BOOL as true/false or 0/1).

/// An element type as read from JSON text.
protocol WireScalar {
    associatedtype Stored
    /// What the value must be, for errors ("a number", "an integer in the range of Int8").
    static var expected: String { get }
    /// Parses the JSON number or literal at `p` (at most `limit` bytes): the value and the bytes
    /// it took, or nil when it is not a valid token of this type.
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (Stored, Int)?
    /// Parses a quoted token (`"NaN"` and the infinities for floats).
    static func parseString(_ p: UnsafePointer<UInt8>, _ n: Int) -> Stored?
}

extension WireScalar {
    static func parseString(_ p: UnsafePointer<UInt8>, _ n: Int) -> Stored? { nil }
}

extension Float: WireScalar {
    typealias Stored = Float
    static var expected: String { "a number" }
    static func parseString(_ p: UnsafePointer<UInt8>, _ n: Int) -> Float? { NumberText.special(p, n).map { Float($0) } }
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (Float, Int)? {
        guard let d = NumberText.scan(p, limit) else { return nil }
        if let v = d.fastDouble {
            let f = Float(v)
            // Rounding the exact value to double, then double to float, is one correct rounding
            // unless the double fell exactly halfway between two floats (then ask strtof), or the
            // float is subnormal or out of range (strtof gets those right too).
            if v.bitPattern & 0x1FFF_FFFF != 0x1000_0000, f.isFinite, f == 0 || abs(f) >= Float.leastNormalMagnitude {
                return (f, d.length)
            }
        }
        if let bits = d.binaryBits(fractionBits: 23, bias: 127) {
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: bits))
            return (d.negative ? -f : f, d.length)
        }
        var end: UnsafeMutablePointer<CChar>? = nil
        let v = p.withMemoryRebound(to: CChar.self, capacity: d.length) { strtof($0, &end) }
        return UnsafeRawPointer(end) == UnsafeRawPointer(p + d.length) ? (v, d.length) : nil
    }
}

extension Double: WireScalar {
    typealias Stored = Double
    static var expected: String { "a number" }
    static func parseString(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? { NumberText.special(p, n) }
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (Double, Int)? {
        guard let d = NumberText.scan(p, limit) else { return nil }
        if let v = d.fastDouble { return (v, d.length) }
        if let bits = d.binaryBits(fractionBits: 52, bias: 1023) {
            let v = Double(bitPattern: bits)
            return (d.negative ? -v : v, d.length)
        }
        return NumberText.strtodExact(p, d.length).map { ($0, d.length) }
    }
}

/// FP16 elements, stored as their bit pattern (through Double: one more rounding, exact except
/// for decimal texts that fall within 2^-42 relative of a half-way point between two halves).
enum HalfScalar: WireScalar {
    typealias Stored = UInt16
    static var expected: String { "a number" }
    static func parseString(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt16? {
        NumberText.special(p, n).map { Float16($0).bitPattern }
    }
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (UInt16, Int)? {
        Double.parse(p, limit).map { (Float16($0.0).bitPattern, $0.1) }
    }
}

/// BOOL elements, one byte each: true/false, or 0/1.
enum BoolScalar: WireScalar {
    typealias Stored = UInt8
    static var expected: String { "a boolean (true, false, 0 or 1)" }
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (UInt8, Int)? {
        let rest = UnsafeBufferPointer(start: p, count: limit)
        if limit >= 4 && rest[0..<4].elementsEqual("true".utf8) { return (1, 4) }
        if limit >= 5 && rest[0..<5].elementsEqual("false".utf8) { return (0, 5) }
        guard let d = NumberText.scan(p, limit), d.integral, !d.negative, d.mantissa <= 1 else { return nil }
        return (UInt8(d.mantissa), d.length)
    }
}

extension Int8: WireScalar { typealias Stored = Int8 }
extension Int16: WireScalar { typealias Stored = Int16 }
extension Int32: WireScalar { typealias Stored = Int32 }
extension Int64: WireScalar { typealias Stored = Int64 }
extension UInt8: WireScalar { typealias Stored = UInt8 }
extension UInt16: WireScalar { typealias Stored = UInt16 }
extension UInt32: WireScalar { typealias Stored = UInt32 }
extension UInt64: WireScalar { typealias Stored = UInt64 }

extension WireScalar where Self: FixedWidthInteger, Stored == Self {
    static var expected: String { "an integer in the range of \(Self.self)" }
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ limit: Int) -> (Self, Int)? {
        guard let d = NumberText.scan(p, limit) else { return nil }
        if d.integral {
            guard !d.overflow else { return nil }
            if d.negative {
                if d.mantissa == 0 { return (0, d.length) }
                guard Self.isSigned, d.mantissa <= UInt64(1) << 63 else { return nil }
                let v = d.mantissa == UInt64(1) << 63 ? Int64.min : -Int64(d.mantissa)
                return Self(exactly: v).map { ($0, d.length) }
            }
            return Self(exactly: d.mantissa).map { ($0, d.length) }
        }
        // "3.0" or "1e2": whole values written as floats.
        guard let v = d.fastDouble ?? NumberText.strtodExact(p, d.length), v == v.rounded(), abs(v) < 0x1p63 else {
            return nil
        }
        return Self(exactly: v).map { ($0, d.length) }
    }
}
