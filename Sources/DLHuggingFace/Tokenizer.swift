import DLSupport
import DLTensor
import Foundation

/// One encoded text (or pair): what a model takes.
public struct HFEncoding: Sendable, Equatable {
    public var ids: [Int]
    public var typeIds: [Int]
    public var attentionMask: [Int]

    /// Pads to `length` tokens (nothing when already as long): `id` and `typeId`, attention mask 0.
    mutating func pad(to length: Int, id: Int, typeId: Int, left: Bool) {
        let n = length - ids.count
        guard n > 0 else { return }
        let pads = Array(repeating: id, count: n), types = Array(repeating: typeId, count: n), zeros = Array(repeating: 0, count: n)
        if left {
            self = HFEncoding(ids: pads + ids, typeIds: types + typeIds, attentionMask: zeros + attentionMask)
        } else {
            ids += pads
            typeIds += types
            attentionMask += zeros
        }
    }
}

/// A tokenizer read from a `tokenizer.json` of the Hugging Face `tokenizers` library, giving the
/// ids that library gives: added tokens, normalizer, pre-tokenizer, model (WordPiece, BPE,
/// Unigram), post-processor, truncation and padding, as configured in the file.
public struct HFTokenizer: Sendable {
    public let path: String
    let added: [AddedToken]
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: TokenizerModel
    let postProcessor: PostProcessor?
    let truncation: Truncation?
    let padding: Padding?
    /// token string -> id, added tokens included.
    let vocab: [String: Int]
    /// id -> token string.
    let tokens: [Int: String]
    let special: Set<Int>
    /// The decoder, or why it cannot be built (encoding does not need it).
    let decoder: Result<Decoder?, HFError>

    struct AddedToken: Sendable {
        let id: Int, content: String, lstrip: Bool, rstrip: Bool, normalized: Bool, singleWord: Bool, special: Bool
    }

    struct Truncation: Sendable {
        let maxLength: Int, strategy: String, left: Bool
    }

    struct Padding: Sendable {
        let fixed: Int?, multiple: Int?, id: Int, typeId: Int, left: Bool
    }

    public init(path: String) throws(HFError) {
        try self.init(json: try readJSONFile(path), path: path)
    }

    package init(json: JSON, path: String) throws(HFError) {
        self.path = path
        let r = JSONReader(path: path)
        decoder = Result { () throws(HFError) in try Decoder.parse(json["decoder"], r, "decoder") }
        guard case .object = json else { throw .invalid(path: path, reason: "expected an object at the top, found \(json.kindDescription)") }
        var added: [AddedToken] = []
        for (i, t) in try r.array(json["added_tokens"], "added_tokens", optional: true).enumerated() {
            let at = "added_tokens[\(i)]"
            added.append(AddedToken(id: try r.int(t["id"], "\(at).id"), content: try r.string(t["content"], "\(at).content"),
                                    lstrip: t["lstrip"]?.boolValue ?? false, rstrip: t["rstrip"]?.boolValue ?? false,
                                    normalized: t["normalized"]?.boolValue ?? false, singleWord: t["single_word"]?.boolValue ?? false,
                                    special: t["special"]?.boolValue ?? false))
        }
        self.added = added.filter { !$0.content.isEmpty }
        normalizer = try Normalizer.parse(json["normalizer"], r, "normalizer")
        preTokenizer = try PreTokenizer.parse(json["pre_tokenizer"], r, "pre_tokenizer")
        guard let m = json["model"] else { throw .invalid(path: path, reason: "no \"model\"") }
        model = try TokenizerModel.parse(m, r)
        postProcessor = try PostProcessor.parse(json["post_processor"], r, "post_processor")
        /// Lengths past this are refused: a padded encoding is allocated whole.
        let maxLength = 1 << 20
        if let t = json["truncation"], !t.isNull {
            truncation = Truncation(maxLength: try r.int(t["max_length"], "truncation.max_length"),
                                    strategy: t["strategy"]?.stringValue ?? "LongestFirst", left: t["direction"]?.stringValue == "Left")
        } else { truncation = nil }
        if let p = json["padding"], !p.isNull {
            var fixed: Int? = nil
            if let s = p["strategy"], case .object = s { fixed = try r.int(s["Fixed"], "padding.strategy.Fixed") }
            let multiple = p["pad_to_multiple_of"].flatMap { $0.isNull ? nil : $0.intValue }
            for (name, n) in [("padding.strategy.Fixed", fixed), ("padding.pad_to_multiple_of", multiple)] {
                if let n, n < 0 || n > maxLength { throw r.fail(name, "\(n) is outside 0...\(maxLength)") }
            }
            padding = Padding(fixed: fixed, multiple: multiple, id: p["pad_id"]?.intValue ?? 0, typeId: p["pad_type_id"]?.intValue ?? 0,
                              left: p["direction"]?.stringValue == "Left")
        } else { padding = nil }
        var v = model.vocabulary
        for a in self.added { v[a.content] = a.id }
        vocab = v
        var t: [Int: String] = [:]
        for (k, id) in v where t[id] == nil || self.added.contains(where: { $0.id == id && $0.content == k }) { t[id] = k }
        tokens = t
        special = Set(added.filter(\.special).map(\.id))
    }

    /// The text of `ids` through the tokenizer.json decoder (special tokens left out by default).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) throws(HFError) -> String {
        let pieces = ids.compactMap { id in skipSpecialTokens && special.contains(id) ? nil : tokens[id] }
        guard let d = try decoder.get() else { return pieces.joined(separator: " ") }
        return d.chain(pieces).joined()
    }

    public func id(of token: String) -> Int? { vocab[token] }

    /// The ids of `text` (and `pair`), with special tokens, truncation and padding as configured.
    public func encode(_ text: String, pair: String? = nil) -> HFEncoding {
        var a = tokenize(text)
        var b = pair.map(tokenize)
        if let t = truncation {
            let room = max(0, t.maxLength - (postProcessor?.addedCount(pair: b != nil) ?? 0))
            if var bb = b {
                switch t.strategy {
                case "OnlyFirst": a = cut(a, max(0, room - bb.count), left: t.left)
                case "OnlySecond": bb = cut(bb, max(0, room - a.count), left: t.left)
                default:
                    // The shorter keeps up to half the room (the first counts as shorter on a
                    // tie), the longer takes the rest: the lengths the `tokenizers` library keeps.
                    var n1 = a.count, n2 = bb.count
                    if n1 + n2 > room {
                        if n1 > n2 { n2 = min(n2, room / 2); n1 = room - n2 } else { n1 = min(n1, room / 2); n2 = room - n1 }
                    }
                    a = cut(a, n1, left: t.left)
                    bb = cut(bb, n2, left: t.left)
                }
                b = bb
            } else {
                a = cut(a, room, left: t.left)
            }
        }
        var enc: HFEncoding
        if let p = postProcessor {
            enc = p.process(a, b)
        } else {
            enc = HFEncoding(ids: a + (b ?? []), typeIds: Array(repeating: 0, count: a.count) + Array(repeating: 1, count: b?.count ?? 0),
                             attentionMask: Array(repeating: 1, count: a.count + (b?.count ?? 0)))
        }
        if let p = padding {
            var target = max(enc.ids.count, p.fixed ?? 0)
            if let m = p.multiple, m > 0, target % m != 0 { target += m - target % m }
            enc.pad(to: target, id: p.id, typeId: p.typeId, left: p.left)
        }
        return enc
    }

    /// How a batch is padded to its longest encoding.
    public struct BatchPadding: Sendable, Equatable {
        public var id: Int
        public var typeId: Int
        public var left: Bool

        public init(id: Int, typeId: Int = 0, left: Bool = false) {
            self.id = id
            self.typeId = typeId
            self.left = left
        }
    }

    /// The padding tokenizer.json configures, nil when it has none.
    public var configuredPadding: BatchPadding? { padding.map { BatchPadding(id: $0.id, typeId: $0.typeId, left: $0.left) } }

    /// Encodes each text (with its pair) and pads every encoding to the longest, as `tokenizers`'
    /// `encode_batch` does with padding on: with tokenizer.json's padding when it has one, else
    /// with `fallback` (padded positions have attention mask 0).
    public func encodeBatch(_ texts: [String], pairs: [String]? = nil, padding fallback: BatchPadding) -> [HFEncoding] {
        var list = texts.indices.map { i in encode(texts[i], pair: pairs.flatMap { i < $0.count ? $0[i] : nil }) }
        let p = configuredPadding ?? fallback
        let longest = list.map(\.ids.count).max() ?? 0
        for i in list.indices { list[i].pad(to: longest, id: p.id, typeId: p.typeId, left: p.left) }
        return list
    }

    private func cut(_ ids: [Int], _ n: Int, left: Bool) -> [Int] {
        ids.count <= n ? ids : (left ? Array(ids.suffix(n)) : Array(ids.prefix(n)))
    }

    /// The model's ids of `text` before post-processing: added tokens split out first, then each
    /// piece between them normalized, pre-tokenized and tokenized.
    public func tokenize(_ text: String) -> [Int] {
        var out: [Int] = []
        var first = true
        for segment in splitAdded(text, added.filter { !$0.normalized }) {
            switch segment {
            case .token(let id): out.append(id)
            case .text(let s):
                let normalized = normalizer?.apply(s) ?? s
                for inner in splitAdded(normalized, added.filter(\.normalized)) {
                    switch inner {
                    case .token(let id): out.append(id)
                    case .text(let piece):
                        let words = preTokenizer?.split([piece], first: first) ?? [piece]
                        for w in words where !w.isEmpty { model.tokenize(w, into: &out) }
                    }
                }
            }
            first = false
        }
        return out
    }

    enum Segment { case text(String), token(Int) }

    /// Splits `text` at occurrences of added tokens (leftmost, longest first), honouring their
    /// lstrip/rstrip (whitespace beside the token goes with it) and single_word.
    func splitAdded(_ text: String, _ tokens: [AddedToken]) -> [Segment] {
        guard !tokens.isEmpty, !text.isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        let scalars = Array(text.unicodeScalars)
        // Candidates by first scalar, longest first.
        var byFirst: [Unicode.Scalar: [([Unicode.Scalar], AddedToken)]] = [:]
        for t in tokens {
            let p = Array(t.content.unicodeScalars)
            if let f = p.first { byFirst[f, default: []].append((p, t)) }
        }
        for k in byFirst.keys { byFirst[k]?.sort { $0.0.count > $1.0.count } }
        var out: [Segment] = []
        var start = 0, i = 0
        func isWordChar(_ s: Unicode.Scalar) -> Bool { s.properties.isAlphabetic || s.properties.numericType != nil || s == "_" }
        while i < scalars.count {
            var matched: (Int, AddedToken)? = nil
            for (p, t) in byFirst[scalars[i]] ?? [] where i + p.count <= scalars.count && scalars[i..<(i + p.count)].elementsEqual(p) {
                if t.singleWord {
                    if i > 0, isWordChar(scalars[i - 1]) { continue }
                    if i + p.count < scalars.count, isWordChar(scalars[i + p.count]) { continue }
                }
                matched = (p.count, t)
                break
            }
            guard let (len, t) = matched else { i += 1; continue }
            var before = i, after = i + len
            if t.lstrip { while before > start, scalars[before - 1].properties.isWhitespace { before -= 1 } }
            if t.rstrip { while after < scalars.count, scalars[after].properties.isWhitespace { after += 1 } }
            if before > start { out.append(.text(String(String.UnicodeScalarView(scalars[start..<before])))) }
            out.append(.token(t.id))
            start = after
            i = after
        }
        if start < scalars.count { out.append(.text(String(String.UnicodeScalarView(scalars[start...])))) }
        return out
    }
}

/// Typed reads of tokenizer.json fields with the field path in every error.
struct JSONReader {
    let path: String

    func fail(_ field: String, _ what: String) -> HFError { .invalid(path: path, reason: "\(field): \(what)") }

    func string(_ v: JSON?, _ field: String) throws(HFError) -> String {
        guard let v else { throw fail(field, "missing") }
        guard let s = v.stringValue else { throw fail(field, "is \(v.kindDescription), expected a string") }
        return s
    }

    func int(_ v: JSON?, _ field: String) throws(HFError) -> Int {
        guard let v else { throw fail(field, "missing") }
        guard let i = v.intValue else { throw fail(field, "is \(v.kindDescription), expected a non-negative integer") }
        guard i >= 0, i < 1 << 31 else { throw fail(field, "is \(i), outside 0...\((1 << 31) - 1)") }
        return i
    }

    func array(_ v: JSON?, _ field: String, optional: Bool = false) throws(HFError) -> [JSON] {
        guard let v, !v.isNull else {
            if optional { return [] }
            throw fail(field, "missing")
        }
        guard let a = v.arrayValue else { throw fail(field, "is \(v.kindDescription), expected an array") }
        return a
    }

    /// The components listed under `v[key]` (a Sequence's members), each read by `parse`.
    func list<T>(_ v: JSON, _ key: String, _ field: String,
                 _ parse: (JSON?, JSONReader, String) throws(HFError) -> T?) throws(HFError) -> [T] {
        var out: [T] = []
        for (i, x) in try array(v[key], "\(field).\(key)").enumerated() {
            if let c = try parse(x, self, "\(field).\(key)[\(i)]") { out.append(c) }
        }
        return out
    }

    /// The `type` of a component object.
    func type(_ v: JSON, _ field: String) throws(HFError) -> String {
        guard case .object = v else { throw fail(field, "is \(v.kindDescription), expected an object") }
        return try string(v["type"], "\(field).type")
    }

    /// A pattern given as {"String": s} or {"Regex": r}, compiled (a literal string escaped).
    func pattern(_ v: JSON?, _ field: String) throws(HFError) -> CompiledRegex {
        let source: String
        if let s = v?["String"]?.stringValue { source = NSRegularExpression.escapedPattern(for: s) }
        else if let r = v?["Regex"]?.stringValue { source = r }
        else { throw fail(field, "expected {\"String\": ...} or {\"Regex\": ...}") }
        do { return CompiledRegex(try NSRegularExpression(pattern: source, options: [])) } catch { throw fail(field, "regex '\(source)' does not compile") }
    }
}

/// A compiled regular expression (ICU's, through Foundation); matching does not mutate it.
struct CompiledRegex: @unchecked Sendable {
    let regex: NSRegularExpression
    init(_ regex: NSRegularExpression) { self.regex = regex }

    /// The matched ranges of `s`, in order, as String indices (scalar-aligned: a match may end
    /// inside a grapheme cluster, e.g. before a zero-width joiner).
    func matches(_ s: String) -> [Range<String.Index>] {
        let u = s.utf16
        return regex.matches(in: s, options: [], range: NSRange(location: 0, length: u.count)).compactMap { m in
            guard m.range.location != NSNotFound,
                  let lo = u.index(u.startIndex, offsetBy: m.range.location, limitedBy: u.endIndex),
                  let hi = u.index(lo, offsetBy: m.range.length, limitedBy: u.endIndex) else { return nil }
            return lo..<hi
        }
    }

    func replacing(_ s: String, with template: String) -> String {
        regex.stringByReplacingMatches(in: s, options: [], range: NSRange(location: 0, length: (s as NSString).length),
                                       withTemplate: NSRegularExpression.escapedTemplate(for: template))
    }
}
