import DLGraph
import DLTensor
import Foundation

/// String ops (StringNormalizer, RegexFullMatch, StringSplit, StringConcat) and the text
/// vectoriser TfIdfVectorizer.
enum StringKernels {
    static var all: [KernelEntry] {
        [.init("StringNormalizer", normalizer), .init("RegexFullMatch", regexFullMatch), .init("StringSplit", split),
         .init("StringConcat", concat), .init("TfIdfVectorizer", tfidf)]
    }

    static var values: [(String, ValueKernel)] { [] }

    static func strings(_ ctx: KernelContext, _ i: Int) throws(RuntimeError) -> Tensor {
        let t = try ctx.input(i)
        guard t.dtype == .string else { throw ctx.fail("input \(i) must be a string tensor, got \(t.dtype)") }
        return t
    }

    static func attributeStrings(_ ctx: KernelContext, _ name: String) throws(RuntimeError) -> [String]? {
        switch ctx.node.attribute(name) {
        case nil: return nil
        case .strings(let s)?: return s
        case let other?: throw ctx.fail("attribute '\(name)' must be strings, got \(other.kindName)")
        }
    }

    /// Drops stop words (whole elements), then changes case. A [1, C] or [C] input; an input
    /// left empty becomes one "" element.
    static func normalizer(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try strings(ctx, 0)
        guard x.rank == 1 || (x.rank == 2 && x.shape[0] == 1) else {
            throw ctx.fail("the input must be [C] or [1, C], got \(x.shape)")
        }
        let action = try ctx.string("case_change_action", "NONE")
        guard ["NONE", "LOWER", "UPPER"].contains(action) else { throw ctx.fail("unknown case_change_action '\(action)'") }
        let sensitive = try ctx.int("is_case_sensitive", 0) != 0
        let stops = try attributeStrings(ctx, "stopwords") ?? []
        let stopSet = Set(sensitive ? stops : stops.map { $0.lowercased() })
        var out: [String] = []
        for s in x.strings {
            if stopSet.contains(sensitive ? s : s.lowercased()) { continue }
            switch action {
            case "LOWER": out.append(s.lowercased())
            case "UPPER": out.append(s.uppercased())
            default: out.append(s)
            }
        }
        if out.isEmpty { out = [""] }
        return [Tensor(shape: x.rank == 2 ? [1, out.count] : [out.count], strings: out)]
    }

    static func regexFullMatch(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try strings(ctx, 0)
        let pattern = try ctx.string("pattern", "")
        // A full match: the pattern wrapped in start/end-of-input anchors.
        let re: NSRegularExpression
        do { re = try NSRegularExpression(pattern: "\\A(?:\(pattern))\\z") } catch {
            throw ctx.fail("invalid pattern '\(pattern)': \(error)")
        }
        let matches = x.strings.map { s -> Bool in
            re.firstMatch(in: s, range: NSRange(location: 0, length: (s as NSString).length)) != nil
        }
        return [Tensor.fromBools(matches, shape: x.shape)]
    }

    /// Python `str.split` semantics: with a delimiter every occurrence splits (empty pieces kept);
    /// without one, runs of whitespace split and leading/trailing whitespace is dropped.
    static func split(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try strings(ctx, 0)
        let delimiter = try ctx.string("delimiter", "")
        let maxsplit: Int? = ctx.node.attribute("maxsplit") == nil ? nil : try ctx.int("maxsplit", 0)
        var pieces: [[String]] = []
        for s in x.strings {
            var parts: [String] = []
            if delimiter.isEmpty {
                var rest = Substring(s)
                while true {
                    rest = rest.drop { $0.isWhitespace }
                    if rest.isEmpty { break }
                    if let m = maxsplit, parts.count == m { parts.append(String(rest)); break }
                    let word = rest.prefix { !$0.isWhitespace }
                    parts.append(String(word))
                    rest = rest.dropFirst(word.count)
                }
            } else {
                var rest = s[...]
                while let r = rest.range(of: delimiter), maxsplit.map({ parts.count < $0 }) ?? true {
                    parts.append(String(rest[..<r.lowerBound]))
                    rest = rest[r.upperBound...]
                }
                parts.append(String(rest))
            }
            pieces.append(parts)
        }
        let width = pieces.map(\.count).max() ?? 0
        var flat: [String] = []
        flat.reserveCapacity(pieces.count * width)
        for p in pieces { flat += p + Array(repeating: "", count: width - p.count) }
        return [Tensor(shape: x.shape + [width], strings: flat),
                Tensor.fromInt64s(pieces.map { Int64($0.count) }, dtype: .int64, shape: x.shape)]
    }

    static func concat(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let a = try strings(ctx, 0), b = try strings(ctx, 1)
        let (shape, maps) = try ctx.broadcastMaps([a.shape, b.shape])
        let ma = maps[0], mb = maps[1]
        let sa = a.strings, sb = b.strings
        return [Tensor(shape: shape, strings: zip(ma, mb).map { sa[$0.0] + sb[$0.1] })]
    }

    // MARK: TfIdfVectorizer

    static func tfidf(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        let minGram = try ctx.int("min_gram_length", 1), maxGram = try ctx.int("max_gram_length", 1)
        let maxSkip = try ctx.int("max_skip_count", 0)
        let mode = try ctx.string("mode", "TF")
        guard ["TF", "IDF", "TFIDF"].contains(mode) else { throw ctx.fail("unknown mode '\(mode)'") }
        guard minGram >= 1, maxGram >= minGram, maxSkip >= 0 else {
            throw ctx.fail("gram lengths \(minGram)...\(maxGram) / skip \(maxSkip) are invalid")
        }
        let counts = try ctx.ints("ngram_counts") ?? []
        let indexes = try ctx.ints("ngram_indexes") ?? []
        let weights = ctx.floats("weights") ?? []
        let pool: [String]
        if let p = try ctx.ints("pool_int64s") { pool = p.map { String($0) } }
        else { pool = try attributeStrings(ctx, "pool_strings") ?? [] }
        guard let outSize = indexes.max().map({ $0 + 1 }), outSize > 0 else { throw ctx.fail("ngram_indexes is empty") }
        guard indexes.allSatisfy({ $0 >= 0 }) else { throw ctx.fail("ngram_indexes has a negative entry") }
        // n-gram (joined with \u{1}) -> output index; ids run over every pool n-gram in order.
        var table: [[String]: Int] = [:]
        var id = 0
        for (k, start) in counts.enumerated() {
            let n = k + 1
            let end = k + 1 < counts.count ? counts[k + 1] : pool.count
            guard start >= 0, start <= end, end <= pool.count else { throw ctx.fail("ngram_counts \(counts) do not fit the pool of \(pool.count)") }
            var i = start
            while i + n <= end {
                if n >= minGram && n <= maxGram {
                    guard id < indexes.count else { throw ctx.fail("ngram_indexes has fewer entries than the pool has n-grams") }
                    table[Array(pool[i..<(i + n)])] = indexes[id]
                }
                id += 1
                i += n
            }
        }
        let items: [String] = x.dtype == .string ? x.strings : x.int64s().map { String($0) }
        let rows: Int, width: Int
        switch x.rank {
        case 0: rows = 1; width = 1
        case 1: rows = 1; width = x.shape[0]
        case 2: rows = x.shape[0]; width = x.shape[1]
        default: throw ctx.fail("the input must be [C] or [B, C], got \(x.shape)")
        }
        var freq = [Double](repeating: 0, count: rows * outSize)
        for r in 0..<rows {
            let row = Array(items[(r * width)..<((r + 1) * width)])
            var startSize = minGram
            for skip in 1...(maxSkip + 1) {
                for s in 0..<row.count {
                    var gram: [String] = []
                    var pos = s
                    while gram.count < maxGram && pos < row.count {
                        gram.append(row[pos])
                        if gram.count >= startSize, let o = table[gram] { freq[r * outSize + o] += 1 }
                        pos += skip
                    }
                }
                // Unigrams do not depend on the skip: count them in the first pass only.
                if startSize == 1 {
                    startSize = 2
                    if startSize > maxGram { break }
                }
            }
        }
        var y = freq
        switch mode {
        case "IDF":
            for i in y.indices { y[i] = freq[i] > 0 ? (weights.isEmpty ? 1 : Double(weights[i % outSize])) : 0 }
        case "TFIDF":
            if !weights.isEmpty { for i in y.indices { y[i] = Double(weights[i % outSize]) * freq[i] } }
        default: break
        }
        guard weights.isEmpty || weights.count >= outSize else { throw ctx.fail("weights has \(weights.count) entries for \(outSize) outputs") }
        return [Tensor.fromDoubles(y, dtype: .float32, shape: x.rank == 2 ? [rows, outSize] : [outSize])]
    }
}
