/// Standard base64 (RFC 4648, `+` and `/`), decoded straight into a tensor's bytes and encoded
/// straight into an answer buffer, without the intermediate `Data` and `String` Foundation makes.
package enum Base64 {
    package enum Outcome: Equatable {
        case ok
        /// A character outside the alphabet (or misplaced padding) at this position.
        case invalid(at: Int)
        /// The text decodes to this many bytes (nil: a length no whole byte count has), not the
        /// size of `out`.
        case wrongLength(Int?)
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Value of each byte in the alphabet; 0xFF for anything else.
    private static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// Decodes `text` into exactly `out.count` bytes. Padding (`=`) is optional.
    package static func decode(_ text: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Outcome {
        var n = text.count
        var padding = 0
        while n > 0 && padding < 2 && text[n - 1] == UInt8(ascii: "=") { n -= 1; padding += 1 }
        if padding > 0 && text.count % 4 != 0 { return .invalid(at: n) }
        let remainder = n % 4
        guard remainder != 1 else { return .wrongLength(nil) }
        let decoded = n / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
        guard decoded == out.count else { return .wrongLength(decoded) }
        return values.withUnsafeBufferPointer { table -> Outcome in
            var o = 0
            var i = 0
            while i + 4 <= n {
                let a = table[Int(text[i])], b = table[Int(text[i + 1])]
                let c = table[Int(text[i + 2])], d = table[Int(text[i + 3])]
                if (a | b | c | d) == 0xFF {
                    let bad = [a, b, c, d].firstIndex(of: 0xFF) ?? 0
                    return .invalid(at: i + bad)
                }
                let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                out[o] = UInt8(truncatingIfNeeded: v >> 16)
                out[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                out[o + 2] = UInt8(truncatingIfNeeded: v)
                o += 3
                i += 4
            }
            if remainder > 0 {
                var v: UInt32 = 0
                for k in 0..<remainder {
                    let x = table[Int(text[i + k])]
                    if x == 0xFF { return .invalid(at: i + k) }
                    v |= UInt32(x) << (18 - 6 * k)
                }
                out[o] = UInt8(truncatingIfNeeded: v >> 16)
                if remainder == 3 { out[o + 1] = UInt8(truncatingIfNeeded: v >> 8) }
            }
            return .ok
        }
    }

    /// Appends the padded base64 text of `bytes` to `out`.
    package static func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + (bytes.count + 2) / 3 * 4)
        alphabet.withUnsafeBufferPointer { a in
            var i = 0
            while i + 3 <= bytes.count {
                let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out.append(a[Int(v >> 18 & 63)])
                out.append(a[Int(v >> 12 & 63)])
                out.append(a[Int(v >> 6 & 63)])
                out.append(a[Int(v & 63)])
                i += 3
            }
            let rest = bytes.count - i
            if rest > 0 {
                let v = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                out.append(a[Int(v >> 18 & 63)])
                out.append(a[Int(v >> 12 & 63)])
                out.append(rest == 2 ? a[Int(v >> 6 & 63)] : UInt8(ascii: "="))
                out.append(UInt8(ascii: "="))
            }
        }
    }

    /// The bytes `text` encodes; nil when it is not base64 (a character outside the alphabet,
    /// misplaced padding, or a length no whole byte count has).
    package static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { t -> [UInt8]? in
            let raw = UnsafeRawBufferPointer(t)
            var n = raw.count
            while n > 0 && n > raw.count - 2 && raw[n - 1] == UInt8(ascii: "=") { n -= 1 }
            guard n % 4 != 1 else { return nil }
            var out = [UInt8](repeating: 0, count: n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1))
            let outcome = out.withUnsafeMutableBytes { decode(raw, into: $0) }
            return outcome == .ok ? out : nil
        }
    }

    /// The padded base64 text of `bytes`.
    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { encode($0, into: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}
