import DLSupport
import DLTensor

/// tokenizer.json models: WordPiece, BPE (byte-level or not, byte fallback) and Unigram.
enum TokenizerModel: Sendable {
    case wordPiece(WordPiece)
    case bpe(BPE)
    case unigram(Unigram)

    static func parse(_ v: JSON, _ r: JSONReader) throws(HFError) -> TokenizerModel {
        // Older files leave out the model's "type"; tell the kind by its fields then.
        let type = v["type"]?.stringValue ?? (v["merges"] != nil ? "BPE" : v["vocab"]?.arrayValue != nil ? "Unigram" : "WordPiece")
        switch type {
        case "WordPiece": return .wordPiece(try WordPiece(v, r))
        case "BPE": return .bpe(try BPE(v, r))
        case "Unigram": return .unigram(try Unigram(v, r))
        default: throw .unsupported(path: r.path, reason: "model: '\(type)' (WordPiece, BPE and Unigram are read)")
        }
    }

    var vocabulary: [String: Int] {
        switch self {
        case .wordPiece(let m): m.vocab
        case .bpe(let m): m.vocab
        case .unigram(let m): m.vocab
        }
    }

    func tokenize(_ word: String, into out: inout [Int]) {
        switch self {
        case .wordPiece(let m): m.tokenize(word, into: &out)
        case .bpe(let m): m.tokenize(word, into: &out)
        case .unigram(let m): m.tokenize(word, into: &out)
        }
    }

    /// A {"token": id} vocabulary object.
    static func vocabObject(_ v: JSON?, _ r: JSONReader) throws(HFError) -> [String: Int] {
        guard case .object(let members)? = v else { throw r.fail("model.vocab", "missing or not an object") }
        var out: [String: Int] = [:]
        out.reserveCapacity(members.count)
        for m in members { out[m.key] = try r.int(m.value, "model.vocab[\"\(m.key)\"]") }
        return out
    }
}

/// Greedy longest-match-first WordPiece; a word with a piece not in the vocabulary is the unknown token.
struct WordPiece: Sendable {
    let vocab: [String: Int]
    let unk: Int
    let prefix: String
    let maxChars: Int

    init(_ v: JSON, _ r: JSONReader) throws(HFError) {
        vocab = try TokenizerModel.vocabObject(v["vocab"], r)
        let unkToken = try r.string(v["unk_token"], "model.unk_token")
        guard let u = vocab[unkToken] else { throw r.fail("model.unk_token", "'\(unkToken)' is not in the vocabulary") }
        unk = u
        prefix = v["continuing_subword_prefix"]?.stringValue ?? "##"
        maxChars = v["max_input_chars_per_word"]?.intValue ?? 100
    }

    func tokenize(_ word: String, into out: inout [Int]) {
        let chars = Array(word.unicodeScalars)
        guard chars.count <= maxChars else { out.append(unk); return }
        var pieces: [Int] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int? = nil
            while start < end {
                var sub = String(String.UnicodeScalarView(chars[start..<end]))
                if start > 0 { sub = prefix + sub }
                if let id = vocab[sub] { found = id; break }
                end -= 1
            }
            guard let id = found else { out.append(unk); return }
            pieces.append(id)
            start = end
        }
        out += pieces
    }
}

/// Byte-pair encoding: the word's characters merged pair by pair, lowest merge rank first
/// (leftmost on ties), until no listed merge applies.
struct BPE: Sendable {
    let vocab: [String: Int]
    /// "left right" -> (rank, merged token)
    let ranks: [String: Int]
    let unk: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: String
    let suffix: String

    init(_ v: JSON, _ r: JSONReader) throws(HFError) {
        vocab = try TokenizerModel.vocabObject(v["vocab"], r)
        var ranks: [String: Int] = [:]
        for (i, m) in try r.array(v["merges"], "model.merges").enumerated() {
            let pair: [String]
            if let s = m.stringValue {
                pair = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else if let a = m.arrayValue {
                pair = a.compactMap(\.stringValue)
            } else { throw r.fail("model.merges[\(i)]", "is \(m.kindDescription), expected \"a b\" or [a, b]") }
            guard pair.count == 2 else { throw r.fail("model.merges[\(i)]", "is not a pair") }
            let key = pair[0] + " " + pair[1]
            if ranks[key] == nil { ranks[key] = i }
        }
        self.ranks = ranks
        if let u = v["unk_token"]?.stringValue {
            guard let id = vocab[u] else { throw r.fail("model.unk_token", "'\(u)' is not in the vocabulary") }
            unk = id
        } else { unk = nil }
        fuseUnk = v["fuse_unk"]?.boolValue ?? false
        byteFallback = v["byte_fallback"]?.boolValue ?? false
        ignoreMerges = v["ignore_merges"]?.boolValue ?? false
        prefix = v["continuing_subword_prefix"]?.stringValue ?? ""
        suffix = v["end_of_word_suffix"]?.stringValue ?? ""
    }

    func tokenize(_ word: String, into out: inout [Int]) {
        if ignoreMerges, let id = vocab[word] { out.append(id); return }
        let chars = word.unicodeScalars.map { String($0) }
        var symbols: [String] = chars.enumerated().map { i, c in
            var s = i > 0 ? prefix + c : c
            if i == chars.count - 1 { s += suffix }
            return s
        }
        while symbols.count > 1 {
            var best: (rank: Int, at: Int)? = nil
            for i in 0..<(symbols.count - 1) {
                if let rk = ranks[symbols[i] + " " + symbols[i + 1]], rk < (best?.rank ?? Int.max) { best = (rk, i) }
            }
            guard let (_, i) = best else { break }
            let right = symbols[i + 1]
            let joined = symbols[i] + (prefix.isEmpty || !right.hasPrefix(prefix) ? right : String(right.dropFirst(prefix.count)))
            symbols.replaceSubrange(i...(i + 1), with: [joined])
        }
        var lastWasUnk = false
        for s in symbols {
            if let id = vocab[s] { out.append(id); lastWasUnk = false; continue }
            if byteFallback {
                let bytes = s.utf8.map { vocab[String(format: "<0x%02X", $0) + ">"] }
                if bytes.allSatisfy({ $0 != nil }) { out += bytes.compactMap { $0 }; lastWasUnk = false; continue }
            }
            guard let unk else { continue }  // tokenizers drops a piece it cannot name when there is no unk token
            if fuseUnk, lastWasUnk { continue }
            out.append(unk)
            lastWasUnk = true
        }
    }
}

/// Unigram (SentencePiece) model: the segmentation of best total score (Viterbi over the byte
/// positions), an unknown character scoring the lowest score minus 10; consecutive unknowns fuse.
struct Unigram: Sendable {
    let vocab: [String: Int]
    let pieces: [[UInt8]: (id: Int, score: Double)]
    let maxPieceBytes: Int
    let unk: Int?
    let unkScore: Double
    let byteFallback: Bool

    init(_ v: JSON, _ r: JSONReader) throws(HFError) {
        var vocab: [String: Int] = [:]
        var pieces: [[UInt8]: (id: Int, score: Double)] = [:]
        var minScore = Double.infinity, maxLen = 1
        for (i, e) in try r.array(v["vocab"], "model.vocab").enumerated() {
            guard let pair = e.arrayValue, pair.count == 2, let piece = pair[0].stringValue, let score = pair[1].doubleValue, score.isFinite else {
                throw r.fail("model.vocab[\(i)]", "expected [piece, score]")
            }
            if vocab[piece] == nil { vocab[piece] = i }
            let bytes = Array(piece.utf8)
            if pieces[bytes] == nil { pieces[bytes] = (i, score) }
            minScore = min(minScore, score)
            maxLen = max(maxLen, bytes.count)
        }
        self.vocab = vocab
        self.pieces = pieces
        maxPieceBytes = maxLen
        if let u = v["unk_id"], !u.isNull {
            let id = try r.int(u, "model.unk_id")
            guard id < vocab.count else { throw r.fail("model.unk_id", "\(id) is past the vocabulary (\(vocab.count))") }
            unk = id
        } else { unk = nil }
        unkScore = (minScore.isFinite ? minScore : 0) - 10
        byteFallback = v["byte_fallback"]?.boolValue ?? false
    }

    func tokenize(_ word: String, into out: inout [Int]) {
        let bytes = Array(word.utf8)
        let n = bytes.count
        // best[end] = (score, start, id)
        var best = [(score: Double, start: Int, id: Int)?](repeating: nil, count: n + 1)
        best[0] = (0, 0, -1)
        func offer(_ end: Int, _ cand: Double, _ start: Int, _ id: Int) {
            if let cur = best[end], cur.score >= cand { return }
            best[end] = (cand, start, id)
        }
        var pos = 0
        while pos < n {
            guard let here = best[pos]?.score else { pos += 1; continue }
            let charLen = Self.utf8Length(bytes[pos])
            var single = false
            var len = 1
            while len <= maxPieceBytes, pos + len <= n {
                if let p = pieces[Array(bytes[pos..<(pos + len)])] {
                    offer(pos + len, here + p.score, pos, p.id)
                    if len == charLen { single = true }
                }
                len += 1
            }
            if !single, pos + charLen <= n {
                offer(pos + charLen, here + unkScore, pos, -2)
            }
            pos += max(1, min(charLen, n - pos))
        }
        var path: [(start: Int, end: Int, id: Int)] = []
        var end = n
        while end > 0, let b = best[end] {
            path.append((b.start, end, b.id))
            end = b.start
        }
        path.reverse()
        var lastWasUnk = false
        for (s, e, id) in path {
            if id >= 0 { out.append(id); lastWasUnk = false; continue }
            if byteFallback {
                let ids = bytes[s..<e].map { vocab[String(format: "<0x%02X", $0) + ">"] }
                if ids.allSatisfy({ $0 != nil }) { out += ids.compactMap { $0 }; lastWasUnk = false; continue }
            }
            if lastWasUnk { continue }
            if let unk { out.append(unk) }
            lastWasUnk = true
        }
    }

    static func utf8Length(_ lead: UInt8) -> Int {
        lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
    }
}
