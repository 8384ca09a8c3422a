import DLSupport
import DLTensor
import Foundation

/// How a split keeps the matched parts (the `tokenizers` SplitDelimiterBehavior).
enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    /// Pieces of `s` given the matched ranges (in order, not overlapping).
    func split(_ s: String, _ matches: [Range<String.Index>], invert: Bool = false) -> [String] {
        var parts: [(Substring, Bool)] = []
        var at = s.startIndex
        for m in matches where !m.isEmpty {
            if at < m.lowerBound { parts.append((s[at..<m.lowerBound], invert)) }
            parts.append((s[m], !invert))
            at = m.upperBound
        }
        if at < s.endIndex { parts.append((s[at...], invert)) }
        var out: [String] = []
        switch self {
        case .removed: out = parts.filter { !$0.1 }.map { String($0.0) }
        case .isolated: out = parts.map { String($0.0) }
        case .mergedWithPrevious:
            var lastWasMatch = false
            for (p, isMatch) in parts {
                if isMatch, !out.isEmpty, !lastWasMatch { out[out.count - 1] += p } else { out.append(String(p)) }
                lastWasMatch = isMatch
            }
        case .mergedWithNext:
            var pending = ""
            for (p, isMatch) in parts {
                if isMatch { pending += p } else { out.append(pending + p); pending = "" }
            }
            if !pending.isEmpty { out.append(pending) }
        case .contiguous:
            var lastWasMatch = false
            for (p, isMatch) in parts {
                if isMatch, lastWasMatch, !out.isEmpty { out[out.count - 1] += p } else { out.append(String(p)) }
                lastWasMatch = isMatch
            }
        }
        return out.filter { !$0.isEmpty }
    }
}

/// tokenizer.json pre-tokenizers: BertPreTokenizer, Whitespace, WhitespaceSplit, ByteLevel,
/// Metaspace, Split (string or regex), Punctuation, Digits, Sequence.
indirect enum PreTokenizer: Sendable {
    case bert, whitespace, whitespaceSplit
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: String, prepend: String, split: Bool)
    case split(CompiledRegex, SplitBehavior, invert: Bool)
    case punctuation(SplitBehavior)
    case digits(individual: Bool)
    case sequence([PreTokenizer])

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let gpt2Regex = (try? NSRegularExpression(pattern: gpt2Pattern)).map(CompiledRegex.init)
    static let wordRegex = (try? NSRegularExpression(pattern: #"\w+|[^\w\s]+"#)).map(CompiledRegex.init)

    static func parse(_ v: JSON?, _ r: JSONReader, _ field: String) throws(HFError) -> PreTokenizer? {
        guard let v, !v.isNull else { return nil }
        let type = try r.type(v, field)
        func behavior(_ default: SplitBehavior) throws(HFError) -> SplitBehavior {
            guard let b = v["behavior"] else { return `default` }
            guard let s = b.stringValue, let x = SplitBehavior(rawValue: s) else { throw r.fail("\(field).behavior", "unknown behavior") }
            return x
        }
        switch type {
        case "BertPreTokenizer": return .bert
        case "Whitespace": return .whitespace
        case "WhitespaceSplit": return .whitespaceSplit
        case "ByteLevel": return .byteLevel(addPrefixSpace: v["add_prefix_space"]?.boolValue ?? true, useRegex: v["use_regex"]?.boolValue ?? true)
        case "Metaspace":
            var scheme = v["prepend_scheme"]?.stringValue ?? "always"
            if v["prepend_scheme"] == nil, let a = v["add_prefix_space"]?.boolValue { scheme = a ? "always" : "never" }
            guard ["always", "first", "never"].contains(scheme) else { throw r.fail("\(field).prepend_scheme", "unknown '\(scheme)'") }
            return .metaspace(replacement: try r.string(v["replacement"], "\(field).replacement"), prepend: scheme, split: v["split"]?.boolValue ?? true)
        case "Split":
            return .split(try r.pattern(v["pattern"], "\(field).pattern"), try behavior(.isolated), invert: v["invert"]?.boolValue ?? false)
        case "Punctuation": return .punctuation(try behavior(.isolated))
        case "Digits": return .digits(individual: v["individual_digits"]?.boolValue ?? false)
        case "Sequence": return .sequence(try r.list(v, "pretokenizers", field, parse))
        default: throw .unsupported(path: r.path, reason: "\(field): pre-tokenizer '\(type)'")
        }
    }

    /// Splits every piece further; `first` tells whether the pieces start the text (Metaspace's
    /// "first" prepend scheme).
    func split(_ pieces: [String], first: Bool) -> [String] {
        switch self {
        case .sequence(let ps): return ps.reduce(pieces) { $1.split($0, first: first) }
        default: return pieces.flatMap { one($0, first: first) }
        }
    }

    private func one(_ s: String, first: Bool) -> [String] {
        switch self {
        case .bert:
            return Self.byScalar(s) { c in
                if c.properties.isWhitespace || c == "\t" || c == "\n" || c == "\r" { return .drop }
                return Self.isBertPunctuation(c) ? .isolate : .keep
            }
        case .whitespace: return (Self.wordRegex?.matches(s) ?? []).map { String(s[$0]) }
        case .whitespaceSplit: return Self.byScalar(s) { $0.properties.isWhitespace ? .drop : .keep }
        case .byteLevel(let prefix, let useRegex):
            let text = prefix && !s.hasPrefix(" ") ? " " + s : s
            let parts = useRegex ? SplitBehavior.isolated.split(text, Self.gpt2Regex?.matches(text) ?? []) : [text]
            return parts.map(ByteLevel.encode)
        case .metaspace(let rep, let scheme, let doSplit):
            var t = s.replacingOccurrences(of: " ", with: rep)
            if (scheme == "always" || (scheme == "first" && first)), !t.hasPrefix(rep) { t = rep + t }
            guard doSplit else { return [t] }
            var out: [String] = []
            var cur = ""
            for ch in t.unicodeScalars {
                if String(ch) == rep, !cur.isEmpty { out.append(cur); cur = "" }
                cur.unicodeScalars.append(ch)
            }
            if !cur.isEmpty { out.append(cur) }
            return out
        case .split(let re, let behavior, let invert): return behavior.split(s, re.matches(s), invert: invert)
        case .punctuation(let behavior): return behavior.split(s, Self.scalarRanges(s) { Self.isBertPunctuation($0) })
        case .digits(let individual):
            let ranges = Self.scalarRanges(s) { $0.properties.numericType != nil }
            return individual ? SplitBehavior.isolated.split(s, ranges) : SplitBehavior.contiguous.split(s, ranges)
        case .sequence: return split([s], first: first)
        }
    }

    enum ScalarRole { case keep, drop, isolate }

    static func byScalar(_ s: String, _ role: (Unicode.Scalar) -> ScalarRole) -> [String] {
        var out: [String] = []
        var cur = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            switch role(c) {
            case .keep: cur.append(c)
            case .drop:
                if !cur.isEmpty { out.append(String(cur)); cur = String.UnicodeScalarView() }
            case .isolate:
                if !cur.isEmpty { out.append(String(cur)); cur = String.UnicodeScalarView() }
                out.append(String(c))
            }
        }
        if !cur.isEmpty { out.append(String(cur)) }
        return out
    }

    /// One range per scalar of `s` for which `test` holds.
    static func scalarRanges(_ s: String, _ test: (Unicode.Scalar) -> Bool) -> [Range<String.Index>] {
        var out: [Range<String.Index>] = []
        var i = s.unicodeScalars.startIndex
        while i < s.unicodeScalars.endIndex {
            let next = s.unicodeScalars.index(after: i)
            if test(s.unicodeScalars[i]) { out.append(i..<next) }
            i = next
        }
        return out
    }

    /// ASCII punctuation (symbols such as `$+<=>^|~` included) or a Unicode punctuation category.
    static func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII, (33...47).contains(c.value) || (58...64).contains(c.value) || (91...96).contains(c.value) || (123...126).contains(c.value) { return true }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}

/// GPT-2's reversible map from bytes to printable characters.
enum ByteLevel {
    static let table: [Character] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = printable
        var n = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            chars.append(256 + n)
            n += 1
        }
        var t = [Character](repeating: " ", count: 256)
        for (b, c) in zip(printable, chars) { t[b] = Character(Unicode.Scalar(UInt32(c)) ?? " ") }
        return t
    }()

    static func encode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 { out.append(table[Int(b)]) }
        return out
    }
}
