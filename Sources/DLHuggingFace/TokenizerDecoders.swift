import DLSupport
import DLTensor

/// tokenizer.json decoders (ids back to text): ByteLevel, WordPiece, Metaspace, Replace,
/// ByteFallback, Fuse, Strip, Sequence. Without a decoder, tokens are joined by spaces.
indirect enum Decoder: Sendable {
    case byteLevel
    case wordPiece(prefix: String, cleanup: Bool)
    case metaspace(replacement: String, stripFirst: Bool)
    case replace(String, String)
    case byteFallback
    case fuse
    case strip(String, start: Int, stop: Int)
    case sequence([Decoder])

    static func parse(_ v: JSON?, _ r: JSONReader, _ field: String) throws(HFError) -> Decoder? {
        guard let v, !v.isNull else { return nil }
        let type = try r.type(v, field)
        switch type {
        case "ByteLevel": return .byteLevel
        case "WordPiece": return .wordPiece(prefix: v["prefix"]?.stringValue ?? "##", cleanup: v["cleanup"]?.boolValue ?? true)
        case "Metaspace":
            let scheme = v["prepend_scheme"]?.stringValue ?? ((v["add_prefix_space"]?.boolValue ?? true) ? "always" : "never")
            return .metaspace(replacement: try r.string(v["replacement"], "\(field).replacement"), stripFirst: scheme != "never")
        case "Replace":
            guard let pattern = v["pattern"]?["String"]?.stringValue else { throw .unsupported(path: r.path, reason: "\(field): a Replace decoder with a regex") }
            return .replace(pattern, try r.string(v["content"], "\(field).content"))
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            return .strip(try r.string(v["content"], "\(field).content"), start: try r.int(v["start"], "\(field).start"), stop: try r.int(v["stop"], "\(field).stop"))
        case "Sequence": return .sequence(try r.list(v, "decoders", field, parse))
        default: throw .unsupported(path: r.path, reason: "\(field): decoder '\(type)'")
        }
    }

    /// One step of the chain: tokens in, tokens out (joined by the caller).
    func chain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                for c in t { if let b = ByteLevel.byteOf[c] { bytes.append(b) } else { bytes += Array(String(c).utf8) } }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .wordPiece(let prefix, let cleanup):
            return tokens.enumerated().map { i, t in
                var s = t
                if i > 0 { s = s.hasPrefix(prefix) ? String(s.dropFirst(prefix.count)) : " " + s }
                return cleanup ? Self.cleanUp(s) : s
            }
        case .metaspace(let rep, let stripFirst):
            return tokens.enumerated().map { i, t in
                let s = t.replacingOccurrences(of: rep, with: " ")
                return i == 0 && stripFirst && s.hasPrefix(" ") ? String(s.dropFirst()) : s
            }
        case .replace(let a, let b): return tokens.map { $0.replacingOccurrences(of: a, with: b) }
        case .byteFallback:
            var out: [String] = [], pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                let s = String(validating: pending, as: UTF8.self)
                out += s.map { [$0] } ?? Array(repeating: "\u{FFFD}", count: pending.count)
                pending = []
            }
            for t in tokens {
                if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).prefix(2), radix: 16) {
                    pending.append(b)
                } else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse: return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                var chars = Array(t)
                var n = 0
                while n < start, let f = chars.first, String(f) == content { chars.removeFirst(); n += 1 }
                n = 0
                while n < stop, let l = chars.last, String(l) == content { chars.removeLast(); n += 1 }
                return String(chars)
            }
        case .sequence(let ds): return ds.reduce(tokens) { $1.chain($0) }
        }
    }

    static func cleanUp(_ s: String) -> String {
        var s = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            s = s.replacingOccurrences(of: a, with: b)
        }
        return s
    }
}

extension ByteLevel {
    static let byteOf: [Character: UInt8] = {
        var m: [Character: UInt8] = [:]
        for (b, c) in table.enumerated() { m[c] = UInt8(b) }
        return m
    }()
}
