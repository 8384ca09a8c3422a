import DLSupport
import DLTensor

/// tokenizer.json post-processors: TemplateProcessing, BertProcessing, RobertaProcessing,
/// ByteLevel (offsets only: ids unchanged) and Sequence.
indirect enum PostProcessor: Sendable {
    /// Template pieces: a special token's ids, or sequence 0 (A) / 1 (B), each with a type id.
    enum Piece: Sendable { case special([Int], type: Int), sequence(Int, type: Int) }
    case template(single: [Piece], pair: [Piece])
    case identity
    case sequence([PostProcessor])

    static func parse(_ v: JSON?, _ r: JSONReader, _ field: String) throws(HFError) -> PostProcessor? {
        guard let v, !v.isNull else { return nil }
        let type = try r.type(v, field)
        func token(_ key: String) throws(HFError) -> Int {
            guard let a = v[key]?.arrayValue, a.count == 2 else { throw r.fail("\(field).\(key)", "expected [token, id]") }
            return try r.int(a[1], "\(field).\(key)[1]")
        }
        switch type {
        case "TemplateProcessing":
            var specials: [String: [Int]] = [:]
            if case .object(let ms)? = v["special_tokens"] {
                for m in ms { specials[m.key] = try r.array(m.value["ids"], "\(field).special_tokens.\(m.key).ids").enumerated().map { i, x throws(HFError) in
                    try r.int(x, "\(field).special_tokens.\(m.key).ids[\(i)]") } }
            }
            func pieces(_ key: String) throws(HFError) -> [Piece] {
                var out: [Piece] = []
                for (i, p) in try r.array(v[key], "\(field).\(key)").enumerated() {
                    let at = "\(field).\(key)[\(i)]"
                    if let s = p["SpecialToken"] {
                        let id = try r.string(s["id"], "\(at).SpecialToken.id")
                        guard let ids = specials[id] else { throw r.fail(at, "special token '\(id)' is not in special_tokens") }
                        out.append(.special(ids, type: s["type_id"]?.intValue ?? 0))
                    } else if let s = p["Sequence"] {
                        let id = try r.string(s["id"], "\(at).Sequence.id")
                        guard id == "A" || id == "B" else { throw r.fail(at, "sequence '\(id)' (A or B)") }
                        out.append(.sequence(id == "A" ? 0 : 1, type: s["type_id"]?.intValue ?? 0))
                    } else { throw r.fail(at, "expected SpecialToken or Sequence") }
                }
                return out
            }
            return .template(single: try pieces("single"), pair: try pieces("pair"))
        case "BertProcessing":
            let cls = try token("cls"), sep = try token("sep")
            return .template(single: [.special([cls], type: 0), .sequence(0, type: 0), .special([sep], type: 0)],
                             pair: [.special([cls], type: 0), .sequence(0, type: 0), .special([sep], type: 0),
                                    .sequence(1, type: 1), .special([sep], type: 1)])
        case "RobertaProcessing":
            let cls = try token("cls"), sep = try token("sep")
            return .template(single: [.special([cls], type: 0), .sequence(0, type: 0), .special([sep], type: 0)],
                             pair: [.special([cls], type: 0), .sequence(0, type: 0), .special([sep], type: 0),
                                    .special([sep], type: 0), .sequence(1, type: 0), .special([sep], type: 0)])
        case "ByteLevel": return .identity
        case "Sequence": return .sequence(try r.list(v, "processors", field, parse))
        default: throw .unsupported(path: r.path, reason: "\(field): post-processor '\(type)'")
        }
    }

    /// How many ids the processor adds (truncation leaves room for them).
    func addedCount(pair: Bool) -> Int {
        switch self {
        case .template(let single, let pairPieces):
            return (pair ? pairPieces : single).reduce(0) { n, p in if case .special(let ids, _) = p { n + ids.count } else { n } }
        case .identity: return 0
        case .sequence(let ps): return ps.reduce(0) { $0 + $1.addedCount(pair: pair) }
        }
    }

    func process(_ a: [Int], _ b: [Int]?) -> HFEncoding {
        switch self {
        case .template(let single, let pair):
            var ids: [Int] = [], types: [Int] = []
            for p in (b == nil ? single : pair) {
                switch p {
                case .special(let s, let t): ids += s; types += Array(repeating: t, count: s.count)
                case .sequence(let which, let t):
                    let seq = which == 0 ? a : (b ?? [])
                    ids += seq; types += Array(repeating: t, count: seq.count)
                }
            }
            return HFEncoding(ids: ids, typeIds: types, attentionMask: Array(repeating: 1, count: ids.count))
        case .identity:
            let ids = a + (b ?? [])
            return HFEncoding(ids: ids, typeIds: Array(repeating: 0, count: a.count) + Array(repeating: 1, count: b?.count ?? 0),
                              attentionMask: Array(repeating: 1, count: ids.count))
        case .sequence(let ps):
            // Processors that add tokens compose over the ids; in practice one template follows
            // offset-only ones, so the last template decides.
            guard let last = ps.last(where: { if case .identity = $0 { false } else { true } }) else { return PostProcessor.identity.process(a, b) }
            return last.process(a, b)
        }
    }
}
