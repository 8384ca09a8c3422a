import DLSupport
import DLTensor
import Foundation

/// tokenizer.json normalizers: NFC/NFD/NFKC/NFKD, Lowercase, StripAccents, BertNormalizer,
/// Replace, Prepend, Strip, Sequence.
indirect enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd, lowercase, stripAccents
    case bert(cleanText: Bool, chinese: Bool, stripAccents: Bool, lowercase: Bool)
    case replace(CompiledRegex, String)
    case prepend(String)
    case strip(left: Bool, right: Bool)
    case sequence([Normalizer])

    static func parse(_ v: JSON?, _ r: JSONReader, _ field: String) throws(HFError) -> Normalizer? {
        guard let v, !v.isNull else { return nil }
        let type = try r.type(v, field)
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "StripAccents": return .stripAccents
        case "BertNormalizer":
            let lower = v["lowercase"]?.boolValue ?? true
            let strip = v["strip_accents"].flatMap { $0.isNull ? nil : $0.boolValue } ?? lower
            return .bert(cleanText: v["clean_text"]?.boolValue ?? true, chinese: v["handle_chinese_chars"]?.boolValue ?? true,
                         stripAccents: strip, lowercase: lower)
        case "Replace": return .replace(try r.pattern(v["pattern"], "\(field).pattern"), try r.string(v["content"], "\(field).content"))
        case "Prepend": return .prepend(try r.string(v["prepend"], "\(field).prepend"))
        case "Strip": return .strip(left: v["strip_left"]?.boolValue ?? true, right: v["strip_right"]?.boolValue ?? true)
        case "Sequence": return .sequence(try r.list(v, "normalizers", field, parse))
        default: throw .unsupported(path: r.path, reason: "\(field): normalizer '\(type)'")
        }
    }

    func apply(_ s: String) -> String {
        switch self {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return Self.lowercased(s)
        case .stripAccents: return Self.withoutMarks(s)
        case .bert(let clean, let chinese, let strip, let lower):
            var scalars = String.UnicodeScalarView()
            for c in s.unicodeScalars {
                if clean {
                    if c.value == 0 || c.value == 0xFFFD || Self.isControl(c) { continue }
                    if Self.isBertWhitespace(c) { scalars.append(" "); continue }
                }
                if chinese, Self.isCJK(c) {
                    scalars.append(" "); scalars.append(c); scalars.append(" ")
                } else {
                    scalars.append(c)
                }
            }
            var out = String(scalars)
            if strip { out = Self.withoutMarks(out.decomposedStringWithCanonicalMapping) }
            if lower { out = Self.lowercased(out) }
            return out
        case .replace(let re, let content): return re.replacing(s, with: content)
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .strip(let left, let right):
            var scalars = Array(s.unicodeScalars)
            if left { while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() } }
            if right { while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() } }
            return String(String.UnicodeScalarView(scalars))
        case .sequence(let ns): return ns.reduce(s) { $1.apply($0) }
        }
    }

    /// Per-scalar full lowercase mapping, no context (as Rust's `char::to_lowercase`).
    static func lowercased(_ s: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count)
        for c in s.unicodeScalars { out += c.properties.lowercaseMapping }
        return out
    }

    /// Drops nonspacing marks (general category Mn); spacing marks (Mc, as in Devanagari) stay.
    static func withoutMarks(_ s: String) -> String {
        var v = String.UnicodeScalarView()
        for c in s.unicodeScalars where c.properties.generalCategory != .nonspacingMark { v.append(c) }
        return String(v)
    }

    static func isBertWhitespace(_ c: Unicode.Scalar) -> Bool {
        c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
    }

    /// Control characters BERT's cleaning drops: the "other" categories, tab and newlines excepted.
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// The CJK Unified Ideograph blocks BERT surrounds with spaces.
    static func isCJK(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}
