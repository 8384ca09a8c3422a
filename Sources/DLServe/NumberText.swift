#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decimal text to binary.
enum NumberText {
    /// 10^e for 0 ≤ e ≤ 22, the powers of ten exactly representable as Double (a switch, not a
    /// static table: a lazily initialised static costs a once-check on every number).
    @inline(__always)
    static func power(_ e: Int) -> Double {
        switch e {
        case 0: 1e0
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        case 10: 1e10
        case 11: 1e11
        case 12: 1e12
        case 13: 1e13
        case 14: 1e14
        case 15: 1e15
        case 16: 1e16
        case 17: 1e17
        case 18: 1e18
        case 19: 1e19
        case 20: 1e20
        case 21: 1e21
        default: 1e22
        }
    }

    /// A JSON number as scanned: `-? mantissa × 10^exponent`.
    struct Decimal {
        var negative = false
        /// The digits as an integer (all of them unless `overflow`).
        var mantissa: UInt64 = 0
        var exponent = 0
        /// More digits than UInt64 holds: `mantissa` is only the leading ones.
        var overflow = false
        /// No fraction and no exponent.
        var integral = true
        var length = 0

        /// The correctly rounded Double when Clinger's fast path applies (mantissa ≤ 2^53 and a
        /// power of ten ≤ 10^22, both exact, so one multiplication or division rounds once).
        @inline(__always)
        var fastDouble: Double? {
            if mantissa == 0 && !overflow { return negative ? -0.0 : 0.0 }
            guard !overflow, mantissa <= 1 << 53, exponent >= -22, exponent <= 22 else { return nil }
            let v = exponent >= 0 ? Double(mantissa) * power(exponent) : Double(mantissa) / power(-exponent)
            return negative ? -v : v
        }

        /// The magnitude's float bits from `DecimalToBinary`, or nil when it is not certain
        /// there. With more digits than UInt64 holds, the digits kept and one more in the last
        /// place bracket the value: their results agreeing settles it.
        @inline(__always)
        func binaryBits(fractionBits: Int, bias: Int) -> UInt64? {
            guard let bits = DecimalToBinary.bits(mantissa, exponent, fractionBits: fractionBits, bias: bias) else { return nil }
            guard overflow else { return bits }
            guard mantissa < .max, DecimalToBinary.bits(mantissa + 1, exponent, fractionBits: fractionBits, bias: bias) == bits else { return nil }
            return bits
        }
    }

    /// Scans a number with the JSON grammar `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    /// at `p` (at most `limit` bytes); nil when the text there is not one.
    ///
    /// Up to 19 digits always fit in UInt64, so the common case accumulates without overflow
    /// checks; a number with more digits is scanned again by `scanLong`.
    @inline(__always)
    static func scan(_ p: UnsafePointer<UInt8>, _ limit: Int) -> Decimal? {
        var d = Decimal()
        var i = 0
        var digits = 0
        if p[0] == UInt8(ascii: "-") { d.negative = true; i = 1 }
        guard i < limit, p[i] &- UInt8(ascii: "0") < 10 else { return nil }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i + 8 <= limit, let eight = eightDigits(p + i) {
                d.mantissa = d.mantissa &* 100_000_000 &+ eight
                digits += 8
                i += 8
            }
            while i < limit, case let digit = p[i] &- UInt8(ascii: "0"), digit < 10 {
                d.mantissa = d.mantissa &* 10 &+ UInt64(digit)
                digits += 1
                i += 1
            }
        }
        if i < limit && p[i] == UInt8(ascii: ".") {
            d.integral = false
            i += 1
            let first = i
            // Fractions are most of the digits in float data: eight at a time while they last.
            while i + 8 <= limit, let eight = eightDigits(p + i) {
                d.mantissa = d.mantissa &* 100_000_000 &+ eight
                i += 8
            }
            while i < limit, case let digit = p[i] &- UInt8(ascii: "0"), digit < 10 {
                d.mantissa = d.mantissa &* 10 &+ UInt64(digit)
                i += 1
            }
            guard i > first else { return nil }
            digits += i - first
            d.exponent = first - i
        }
        if digits > 19 { return scanLong(p, limit) }
        return exponentPart(p, limit, i, into: d)
    }

    /// The value of the 8 ASCII digits at `p`, or nil when one of the 8 bytes is not a digit
    /// (SWAR: the bytes as one little-endian word, checked and combined in three multiplications,
    /// pairs, then quads, then the whole).
    @inline(__always)
    static func eightDigits(_ p: UnsafePointer<UInt8>) -> UInt64? {
        let w = UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
        let v = w &- 0x3030_3030_3030_3030
        // Every byte 0...9: no borrow into the high nibble, and adding 6 does not carry into it.
        guard (w & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030,
              ((v &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0 else { return nil }
        // Byte k holds digit k (most significant first). Pairs: 10 * even byte + odd byte.
        let pairs = (v &* 10 &+ (v >> 8)) & 0x00FF_00FF_00FF_00FF
        // Quads: 100 * first pair + second pair, in the low 16 bits of each 32-bit half.
        let quads = (pairs &* 100 &+ (pairs >> 16)) & 0x0000_FFFF_0000_FFFF
        return (quads &* 10_000 &+ (quads >> 32)) & 0xFFFF_FFFF
    }

    /// `scan` for numbers of more than 19 digits: checked accumulation, the digits past what
    /// UInt64 holds only counted in the exponent.
    static func scanLong(_ p: UnsafePointer<UInt8>, _ limit: Int) -> Decimal? {
        var d = Decimal()
        var i = 0
        if i < limit && p[i] == UInt8(ascii: "-") { d.negative = true; i += 1 }
        guard i < limit, p[i] &- UInt8(ascii: "0") < 10 else { return nil }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < limit, case let digit = p[i] &- UInt8(ascii: "0"), digit < 10 {
                if d.overflow {
                    d.exponent += 1
                } else {
                    let (a, o1) = d.mantissa.multipliedReportingOverflow(by: 10)
                    let (b, o2) = a.addingReportingOverflow(UInt64(digit))
                    if o1 || o2 { d.overflow = true; d.exponent += 1 } else { d.mantissa = b }
                }
                i += 1
            }
        }
        if i < limit && p[i] == UInt8(ascii: ".") {
            d.integral = false
            i += 1
            guard i < limit, p[i] &- UInt8(ascii: "0") < 10 else { return nil }
            while i < limit, case let digit = p[i] &- UInt8(ascii: "0"), digit < 10 {
                if !d.overflow {
                    let (a, o1) = d.mantissa.multipliedReportingOverflow(by: 10)
                    let (b, o2) = a.addingReportingOverflow(UInt64(digit))
                    if o1 || o2 { d.overflow = true } else { d.mantissa = b; d.exponent -= 1 }
                }
                i += 1
            }
        }
        return exponentPart(p, limit, i, into: d)
    }

    /// Finishes `d` after its digits, at `i`: an optional `[eE][+-]?[0-9]+` (exponents past
    /// 100000 are only counted that far, which already makes any float 0 or infinite).
    @inline(__always)
    static func exponentPart(_ p: UnsafePointer<UInt8>, _ limit: Int, _ start: Int, into decimal: Decimal) -> Decimal? {
        var d = decimal
        var i = start
        if i < limit && (p[i] | 0x20) == UInt8(ascii: "e") {
            d.integral = false
            i += 1
            var negativeExponent = false
            if i < limit && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) {
                negativeExponent = p[i] == UInt8(ascii: "-")
                i += 1
            }
            guard i < limit, p[i] &- UInt8(ascii: "0") < 10 else { return nil }
            var e = 0
            while i < limit, case let digit = p[i] &- UInt8(ascii: "0"), digit < 10 {
                if e < 100_000 { e = e * 10 + Int(digit) }
                i += 1
            }
            d.exponent += negativeExponent ? -e : e
        }
        d.length = i
        return d
    }

    /// strtod over exactly the `n` bytes at `p` (the byte after them is not part of a number).
    static func strtodExact(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        guard n > 0, p[0] == UInt8(ascii: "-") || (p[0] &- UInt8(ascii: "0")) < 10 else { return nil }
        var end: UnsafeMutablePointer<CChar>? = nil
        let v = p.withMemoryRebound(to: CChar.self, capacity: n) { strtod($0, &end) }
        return UnsafeRawPointer(end) == UnsafeRawPointer(p + n) ? v : nil
    }

    /// "NaN", "Infinity", "-Infinity" (with their quotes).
    static func special(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        let s = UnsafeBufferPointer(start: p, count: n)
        if s.elementsEqual("\"NaN\"".utf8) { return .nan }
        if s.elementsEqual("\"Infinity\"".utf8) { return .infinity }
        if s.elementsEqual("\"-Infinity\"".utf8) { return -.infinity }
        return nil
    }
}
