/// Building and writing JSON. Numbers are kept as text, so a float is written in the shortest
/// form that reads back to the same value (Swift's `description`), and 64-bit integers exactly.
extension JSON {
    package static func int<I: BinaryInteger>(_ v: I) -> JSON { .number(String(v)) }

    /// A float as a number; NaN and infinities, which JSON cannot write as numbers, become the
    /// strings "NaN", "Infinity" and "-Infinity".
    package static func float<F: BinaryFloatingPoint & LosslessStringConvertible>(_ v: F) -> JSON {
        if v.isNaN { return .string("NaN") }
        if v.isInfinite { return .string(v > 0 ? "Infinity" : "-Infinity") }
        return .number(v.description)
    }

    /// An object from key-value pairs, in the given order.
    package static func object(_ pairs: [(String, JSON)]) -> JSON {
        .object(pairs.map { JSONMember(key: $0.0, value: $0.1) })
    }

    /// The member named `key` of an object (the first, if repeated).
    package subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    /// Compact JSON text.
    package func serialized() -> String {
        var out = ""
        write(into: &out)
        return out
    }

    package func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let text): out += text
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, m) in members.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(m.key, into: &out)
                out += ":"
                m.value.write(into: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
