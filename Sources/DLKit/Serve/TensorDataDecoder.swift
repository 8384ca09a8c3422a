#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLTensor

/// Reads the `data` of a request tensor from the request's bytes straight into a new tensor.
///
/// JSON data is either flat (one array of `count` scalars, row-major) or nested exactly as the
/// shape (an array of `shape[0]` arrays of `shape[1]` ... scalars); a rank-0 tensor may also be a
/// bare scalar. Floats accept JSON numbers and the strings "NaN", "Infinity", "-Infinity" and are
/// rounded correctly (nearest, ties to even) to the element type; integers must be whole and in
/// range; BOOL takes true/false or 0/1. Base64 data is a string of the little-endian element bytes.
///
/// The line must be followed in memory by a byte that is not part of a number (the reader keeps a
/// NUL or the newline there): slow-path float parsing uses `strtod`, which reads one byte past.
enum TensorDataDecoder {
    /// Decodes `range` of `line` (a JSON value already checked to be well-formed).
    static func decode(
        line: UnsafeRawBufferPointer, range: Range<Int>, dtype: DType, shape: [Int], count: Int,
        base64: Bool, label: String
    ) throws(ServeError) -> Tensor {
        var tensor = Tensor(zeros: dtype, shape: shape)
        let data = UnsafeRawBufferPointer(rebasing: line[range])
        var failure: ServeError?
        tensor.withUnsafeMutableBytes { out in
            do throws(ServeError) {
                if base64 {
                    try decodeBase64(data, into: out, dtype: dtype, label: label)
                } else {
                    try decodeJSON(data, into: out, dtype: dtype, shape: shape, count: count, label: label)
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        return tensor
    }

    // MARK: - JSON

    static func decodeJSON(
        _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, dtype: DType,
        shape: [Int], count: Int, label: String
    ) throws(ServeError) {
        switch dtype {
        case .float32: try walk(data, out, Float.self, shape: shape, count: count, label: label)
        case .float64: try walk(data, out, Double.self, shape: shape, count: count, label: label)
        case .float16: try walk(data, out, HalfScalar.self, shape: shape, count: count, label: label)
        case .int8: try walk(data, out, Int8.self, shape: shape, count: count, label: label)
        case .int16: try walk(data, out, Int16.self, shape: shape, count: count, label: label)
        case .int32: try walk(data, out, Int32.self, shape: shape, count: count, label: label)
        case .int64: try walk(data, out, Int64.self, shape: shape, count: count, label: label)
        case .uint8: try walk(data, out, UInt8.self, shape: shape, count: count, label: label)
        case .uint16: try walk(data, out, UInt16.self, shape: shape, count: count, label: label)
        case .uint32: try walk(data, out, UInt32.self, shape: shape, count: count, label: label)
        case .uint64: try walk(data, out, UInt64.self, shape: shape, count: count, label: label)
        case .bool: try walk(data, out, BoolScalar.self, shape: shape, count: count, label: label)
        case .bfloat16, .string:
            throw .badRequest("\(label) has the unsupported datatype \(dtype.inferenceProtocolName)")
        }
    }

    /// Walks the (flat or nested) arrays of `data`, parsing each scalar into `out` as `S`.
    static func walk<S: WireScalar>(
        _ data: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, _: S.Type,
        shape: [Int], count: Int, label: String
    ) throws(ServeError) {
        guard let base = data.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw .badRequest("\(label) has no data")
        }
        let dst = out.baseAddress?.assumingMemoryBound(to: S.Stored.self)
        let n = data.count
        var pos = 0
        var depth = 0
        var nested: Bool? = nil
        var lengths = [Int](repeating: 0, count: max(shape.count, 1) + 1)
        var written = 0
        let rank = shape.count

        func tokenEnd(_ from: Int) -> Int {
            var e = from
            if base[e] == UInt8(ascii: "\"") {
                e += 1
                while e < n && base[e] != UInt8(ascii: "\"") { e += (base[e] == UInt8(ascii: "\\") ? 2 : 1) }
                return min(e + 1, n)
            }
            while e < n {
                switch base[e] {
                case UInt8(ascii: ","), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return e
                default: e += 1
                }
            }
            return e
        }
        func text(_ a: Int, _ b: Int) -> String {
            let s = String(decoding: UnsafeRawBufferPointer(start: base + a, count: min(b - a, 40)), as: UTF8.self)
            return b - a > 40 ? s + "..." : s
        }

        while pos < n {
            let c = base[pos]
            switch c {
            case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ","):
                pos += 1
            case UInt8(ascii: "["):
                if depth > 0 {
                    lengths[depth - 1] += 1
                    if depth == 1 && nested == nil { nested = true }
                    guard nested == true else { throw .badRequest("\(label) data mixes numbers and arrays at one level") }
                    guard depth < rank else {
                        throw .badRequest("\(label) data nests deeper than its shape \(shape) (rank \(rank))")
                    }
                }
                depth += 1
                lengths[depth - 1] = 0
                pos += 1
            case UInt8(ascii: "]"):
                if nested == true && depth <= rank && lengths[depth - 1] != shape[depth - 1] {
                    throw .badRequest("\(label) data has \(lengths[depth - 1]) entries at depth \(depth), shape \(shape) needs \(shape[depth - 1])")
                }
                depth -= 1
                pos += 1
            default:
                let end = tokenEnd(pos)
                if depth > 0 {
                    lengths[depth - 1] += 1
                    if depth == 1 && nested == nil { nested = false }
                    if nested == true {
                        guard depth == rank else {
                            throw .badRequest("\(label) data has a value at depth \(depth), shape \(shape) puts values at depth \(rank)")
                        }
                    } else if depth != 1 {
                        throw .badRequest("\(label) data mixes numbers and arrays at one level")
                    }
                }
                guard written < count, let dst else {
                    throw .badRequest("\(label) data has more values than its shape \(shape) holds (\(count))")
                }
                guard let v = S.parse(base + pos, end - pos) else {
                    throw .badRequest("\(label) value \(written) is \(text(pos, end)), not \(S.expected)")
                }
                dst[written] = v
                written += 1
                pos = end
            }
        }
        guard written == count else {
            throw .badRequest("\(label) has \(written) values, shape \(shape) needs \(count)")
        }
    }

    // MARK: - Base64

    static func decodeBase64(
        _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, dtype: DType, label: String
    ) throws(ServeError) {
        guard data.count >= 2, data[0] == UInt8(ascii: "\""), data[data.count - 1] == UInt8(ascii: "\"") else {
            throw .badRequest("\(label) has data_encoding \"base64\" but its data is not a string")
        }
        let content = UnsafeRawBufferPointer(rebasing: data[1..<data.count - 1])
        let result: Base64.Outcome
        if content.contains(UInt8(ascii: "\\")) {
            // Some encoders write "/" as "\/": let the strict parser undo escapes.
            guard case .string(let s)? = try? JSONParser.parse(data) else {
                throw .badRequest("\(label) base64 data is not a valid JSON string")
            }
            result = Array(s.utf8).withUnsafeBytes { Base64.decode($0, into: out) }
        } else {
            result = Base64.decode(content, into: out)
        }
        switch result {
        case .ok: break
        case .invalid(let at):
            throw .badRequest("\(label) base64 data has an invalid character at position \(at)")
        case .wrongLength(let got):
            throw .badRequest("\(label) base64 data decodes to \(got.map { "\($0) bytes" } ?? "a partial byte"), its shape needs \(out.count) bytes of \(dtype.inferenceProtocolName)")
        }
        if dtype == .bool {
            // Normalise: any nonzero byte is true.
            for i in 0..<out.count where out[i] > 1 { out[i] = 1 }
        }
    }
}

// MARK: - Scalars

/// An element type as read from JSON text.
protocol WireScalar {
    associatedtype Stored
    /// What the value must be, for errors ("a number", "an integer in the range of Int8").
    static var expected: String { get }
    /// Parses the token `p ..< p + n` (a JSON number, string or literal), or nil.
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Stored?
}

extension Float: WireScalar {
    typealias Stored = Float
    static var expected: String { "a number" }
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Float? {
        if p[0] == UInt8(ascii: "\"") { return NumberText.special(p, n).map { Float($0) } }
        if let d = NumberText.fastDouble(p, n) {
            let f = Float(d)
            // Rounding the exact value to double, then double to float, is one correct rounding
            // unless the double fell exactly halfway between two floats (then ask strtof), or the
            // float is subnormal or out of range (strtof gets those right too).
            let bits = d.bitPattern & 0x1FFF_FFFF
            if bits != 0x1000_0000, f.isFinite, f == 0 || abs(f) >= Float.leastNormalMagnitude { return f }
        }
        guard n > 0, p[0] == UInt8(ascii: "-") || (p[0] &- UInt8(ascii: "0")) < 10 else { return nil }
        var end: UnsafeMutablePointer<CChar>? = nil
        let v = p.withMemoryRebound(to: CChar.self, capacity: n) { strtof($0, &end) }
        return UnsafeRawPointer(end) == UnsafeRawPointer(p + n) ? v : nil
    }
}

extension Double: WireScalar {
    typealias Stored = Double
    static var expected: String { "a number" }
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        if p[0] == UInt8(ascii: "\"") { return NumberText.special(p, n) }
        if let d = NumberText.fastDouble(p, n) { return d }
        return NumberText.strtodExact(p, n)
    }
}

/// FP16 elements, stored as their bit pattern.
enum HalfScalar: WireScalar {
    typealias Stored = UInt16
    static var expected: String { "a number" }
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt16? {
        guard let d = Double.parse(p, n) else { return nil }
        return Float16(d).bitPattern
    }
}

/// BOOL elements, one byte each.
enum BoolScalar: WireScalar {
    typealias Stored = UInt8
    static var expected: String { "a boolean (true, false, 0 or 1)" }
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt8? {
        switch (n, p[0]) {
        case (4, UInt8(ascii: "t")): return 1
        case (5, UInt8(ascii: "f")): return 0
        case (1, UInt8(ascii: "0")): return 0
        case (1, UInt8(ascii: "1")): return 1
        default: return nil
        }
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
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Self? {
        var i = 0
        let negative = p[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        guard i < n else { return nil }
        var m: UInt64 = 0
        while i < n {
            let d = p[i] &- UInt8(ascii: "0")
            guard d < 10 else {
                // "3.0" or "1e2": whole values written as floats.
                guard let v = NumberText.strtodExact(p, n), v == v.rounded(), abs(v) < 0x1p63 else { return nil }
                return Self(exactly: v)
            }
            let (a, o1) = m.multipliedReportingOverflow(by: 10)
            let (b, o2) = a.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            m = b
            i += 1
        }
        if negative {
            if m == 0 { return 0 }
            guard Self.isSigned, m <= UInt64(1) << 63 else { return nil }
            let v = m == UInt64(1) << 63 ? Int64.min : -Int64(m)
            return Self(exactly: v)
        }
        return Self(exactly: m)
    }
}

/// Decimal text to binary floating point.
enum NumberText {
    /// Powers of ten exactly representable as Double.
    static let powers: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { r, _ in r * 10 } }

    /// The correctly rounded Double of a JSON number when the fast path applies (Clinger: at most
    /// 19 significant digits with a mantissa ≤ 2^53 and a power of ten ≤ 10^22, both exact, so one
    /// multiplication or division rounds once); nil otherwise.
    @inline(__always)
    static func fastDouble(_ p: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        var i = 0
        let negative = p[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        var m: UInt64 = 0
        var digits = 0
        var exponent = 0
        while i < n, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
            guard digits < 19 else { return nil }
            m = m &* 10 &+ UInt64(d)
            if m != 0 { digits += 1 }
            i += 1
        }
        if i < n && p[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
                guard digits < 19 else { return nil }
                m = m &* 10 &+ UInt64(d)
                if m != 0 { digits += 1 }
                exponent -= 1
                i += 1
            }
        }
        if i < n && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            var expNegative = false
            if i < n && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) {
                expNegative = p[i] == UInt8(ascii: "-")
                i += 1
            }
            var e = 0
            while i < n, case let d = p[i] &- UInt8(ascii: "0"), d < 10 {
                guard e < 10_000 else { return nil }
                e = e * 10 + Int(d)
                i += 1
            }
            exponent += expNegative ? -e : e
        }
        guard i == n else { return nil }
        if m == 0 { return negative ? -0.0 : 0.0 }
        guard m <= 1 << 53, exponent >= -22, exponent <= 22 else { return nil }
        let v = exponent >= 0 ? Double(m) * powers[exponent] : Double(m) / powers[-exponent]
        return negative ? -v : v
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
