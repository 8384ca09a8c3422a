import DLGraph
import DLHuggingFace
import DLKernels
import DLRuntime
import DLTensor
import Foundation

/// Text generation with a decoder of a Hugging Face folder (gpt2, llama, mistral, qwen2): the
/// prompt runs once, then each new token is one step over the KV cache (`present.<i>.*` fed back
/// as `past_key_values.<i>.*`, positions as `position_ids`). Greedy by default; temperature, top-k, top-p sampling with a seed.
///
/// The cache has a fixed capacity (`HFFolder.graph(fixedCache:)`), grown by `capacityStep`
/// slots when full: every decode step until then has the same input shapes, so the executor
/// plans it once and reuses the plan (a cache that grew by one each step made a new plan per token).
///
/// ```swift
/// let gen = try TextGenerator(folder: URL(fileURLWithPath: "tiny-llama"))
/// let (ids, text) = try gen.generate(text: "Hello", maxTokens: 20)
/// ```
public final class TextGenerator: Sendable {
    public let folder: HFFolder
    public let tokenizer: HFTokenizer?
    /// Ids that end generation (generation_config.json or config.json `eos_token_id`).
    public let eos: Set<Int>
    let executor: Executor
    /// The cache inputs with their [1, kv heads, head dim].
    let cacheInputs: [(name: String, heads: Int, dim: Int)]
    /// The fixed cache grows by this many slots at a time (its capacity is a multiple, or
    /// `maxPositions`); 1 when the cache grows by concatenation each step (`fixedCache` off).
    let capacityStep: Int
    /// The most positions the model has (config.json `n_positions` / `max_position_embeddings`).
    public let maxPositions: Int?

    /// - Parameters:
    ///   - url: the Hugging Face folder (config.json, weights, tokenizer).
    ///   - options: how the decoder runs (threads, plans, ...), as for a `Model`.
    ///   - fixedCache: false: the cache grows by concatenation, one slot per token, so each step
    ///     has new shapes and a new plan (the same tokens; for comparison).
    public init(folder url: URL, options: RuntimeOptions = .default, fixedCache: Bool = true) throws(DLKitError) {
        do {
            folder = try HFFolder(path: url.path)
            guard folder.isDecoder else {
                throw HFError.unsupported(path: url.path, reason: "generation with model_type '\(folder.config.modelType)' (a decoder is needed)")
            }
            tokenizer = try folder.tokenizer()
            eos = folder.eosTokenIds()
            let json = folder.config.json
            maxPositions = ["n_positions", "max_position_embeddings"].lazy.compactMap { json[$0]?.intValue }.first
            capacityStep = fixedCache ? 32 : 1
            let graph = try folder.graph(cache: true, positionIds: true, fixedCache: fixedCache)
            var cache: [(String, Int, Int)] = []
            for i in graph.inputs where i.name.hasPrefix("past_key_values.") {
                // [batch, kv heads, capacity, head dim]: the heads and head size are fixed in the graph
                guard let d = i.type?.dims, d.count == 4, let heads = d[1].value, let dim = d[3].value else {
                    throw HFError.invalid(path: url.path, reason: "cache input \(i.name) has no fixed heads and head size")
                }
                cache.append((i.name, heads, dim))
            }
            cacheInputs = cache
            do { executor = try Executor(graph: graph, options: options) } catch { throw DLKitError.runtime(error) }
        } catch let e as HFError { throw .huggingFace(e) } catch let e as DLKitError { throw e } catch {
            throw .invalidArgument("\(url.path): \(error)")
        }
    }

    /// How the next token is chosen: temperature 0 is greedy (the highest logit, the lowest id on
    /// a tie); otherwise logits are divided by the temperature, cut to the `topK` highest (0: all)
    /// and to the smallest set whose probability reaches `topP`, and one is drawn with a Mersenne
    /// Twister seeded by `seed` (the same seed, the same tokens).
    public struct Sampling: Sendable {
        public var temperature: Double
        public var topK: Int
        public var topP: Double
        public var seed: UInt32

        public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, seed: UInt32 = 0) {
            self.temperature = temperature
            self.topK = topK
            self.topP = topP
            self.seed = seed
        }

        public static let greedy = Sampling()
    }

    /// Continues `prompt` (token ids): at most `maxTokens` new ids, ending early at an eos id (kept).
    /// `onToken` sees each new id as soon as it is chosen.
    public func generate(ids prompt: [Int], maxTokens: Int, sampling: Sampling = .greedy,
                         onToken: (Int) -> Void = { _ in }) throws(DLKitError) -> [Int] {
        try decode(prompt, maxTokens: maxTokens, sampling: sampling) { (id: Int, _: Bool) throws(DLKitError) -> Bool in
            onToken(id)
            return true
        }
    }

    /// The decode loop: `onToken` gets each new id and whether it is the last (`maxTokens` reached
    /// or an eos id), and returns false to stop there (the ids so far are returned).
    func decode(_ prompt: [Int], maxTokens: Int, sampling: Sampling,
                onToken: (_ id: Int, _ last: Bool) throws(DLKitError) -> Bool) throws(DLKitError) -> [Int] {
        guard !prompt.isEmpty else { throw .invalidArgument("generation needs a prompt of at least one token") }
        guard sampling.temperature >= 0, sampling.topK >= 0, sampling.topP > 0, sampling.topP <= 1 else {
            throw .invalidArgument("sampling needs temperature >= 0, top_k >= 0 and 0 < top_p <= 1")
        }
        if let limit = maxPositions, prompt.count > limit - min(maxTokens, limit) {
            throw .invalidArgument("a prompt of \(prompt.count) tokens and \(maxTokens) new tokens are more than the model's \(limit) positions")
        }
        var rng = MersenneTwister(seed: sampling.seed)
        let fixed = capacityStep > 1
        var feeds: [String: Tensor] = [:]
        for c in cacheInputs { feeds[c.name] = Tensor(zeros: .float32, shape: [1, c.heads, 0, c.dim]) }
        var capacity = 0
        var next = prompt
        var total = 0
        var out: [Int] = []
        while out.count < maxTokens {
            total += next.count
            if !fixed {
                feeds["attention_mask"] = Tensor(shape: [1, total], scalars: [Int64](repeating: 1, count: total))
            } else if total > capacity {
                let grown = (total + capacityStep - 1) / capacityStep * capacityStep
                capacity = max(total, min(grown, maxPositions ?? grown))
                for c in cacheInputs {
                    feeds[c.name] = Self.grow(feeds[c.name], to: [1, c.heads, capacity, c.dim], used: total - next.count)
                }
                feeds["attention_mask"] = Tensor(shape: [1, capacity], scalars: [Int64](repeating: 1, count: capacity))
            }
            // the slots the new tokens take are their positions
            let positions = (total - next.count..<total).map(Int64.init)
            feeds["input_ids"] = Tensor(shape: [1, next.count], scalars: next.map(Int64.init))
            feeds["position_ids"] = Tensor(shape: [1, next.count], scalars: positions)
            if fixed { feeds["cache_position"] = Tensor(shape: [next.count], scalars: positions) }
            let result: [String: Tensor]
            do { result = try executor.run(feeds) } catch { throw .runtime(error) }
            guard let logits = result["logits"], logits.rank == 3, logits.dtype == .float32 else {
                throw .invalidArgument("the decoder gave no float32 logits")
            }
            let vocab = logits.shape[2], last = (logits.shape[1] - 1) * vocab
            let row: [Float] = logits.withUnsafeBufferPointer(as: Float.self) { Array($0[last..<(last + vocab)]) }
            let id = Self.choose(row, sampling, &rng)
            out.append(id)
            let isLast = out.count == maxTokens || eos.contains(id)
            guard try onToken(id, isLast), !isLast else { break }
            for (name, _, _) in cacheInputs {
                feeds[name] = result["present." + name.dropFirst("past_key_values.".count)]
            }
            next = [id]
        }
        return out
    }

    /// A zero cache of `shape` ([1, heads, capacity, dim]) holding the first `used` slots of `old`.
    static func grow(_ old: Tensor?, to shape: [Int], used: Int) -> Tensor {
        var t = Tensor(zeros: .float32, shape: shape)
        guard let old, used > 0 else { return t }
        let heads = shape[1], capacity = shape[2], dim = shape[3], oldCapacity = old.shape[2]
        old.withUnsafeBufferPointer(as: Float.self) { src in
            t.withUnsafeMutableBufferPointer(as: Float.self) { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for h in 0..<heads { (d + h * capacity * dim).update(from: s + h * oldCapacity * dim, count: used * dim) }
            }
        }
        return t
    }

    static func choose(_ logits: [Float], _ s: Sampling, _ rng: inout MersenneTwister) -> Int {
        guard s.temperature > 0 else {
            var best = 0
            for j in logits.indices where logits[j] > logits[best] { best = j }
            return best
        }
        var order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if s.topK > 0, s.topK < order.count { order.removeLast(order.count - s.topK) }
        guard let top = order.first else { return 0 }
        let m = Double(logits[top])
        var p = order.map { exp((Double(logits[$0]) - m) / s.temperature) }
        let sum = p.reduce(0, +)
        p = p.map { $0 / sum }
        var keep = p.count, acc = 0.0
        for (i, x) in p.enumerated() {
            acc += x
            if acc >= s.topP { keep = i + 1; break }
        }
        let kept = p.prefix(keep).reduce(0, +)
        var u = rng.nextDouble() * kept
        for i in 0..<keep {
            u -= p[i]
            if u <= 0 { return order[i] }
        }
        return order[keep - 1]
    }

    /// The text of ids as they are generated, handed out in pieces once they are final: a piece
    /// ends at a space or line break (a word that the next token may still lengthen is held back)
    /// and never inside a character whose bytes are still coming (byte-level BPE splits UTF-8).
    /// The pieces put together are `tokenizer.decode(ids)`.
    public struct TextStream {
        let tokenizer: HFTokenizer
        var ids: [Int] = []
        /// Bytes of the decoded text handed out so far.
        var sent = 0

        public init(tokenizer: HFTokenizer) { self.tokenizer = tokenizer }

        /// The text `id` completes (often empty).
        public mutating func append(_ id: Int) throws(DLKitError) -> String {
            ids.append(id)
            let text = Array(try decoded().utf8)
            guard text.count > sent, !text.isEmpty else { return "" }
            // Up to and including the last space or line break of the new text, unless it ends in
            // a replacement character (the rest of a UTF-8 sequence is in a later token).
            if text.last == 0xBD, text.count >= 3, text[(text.count - 3)...] == [0xEF, 0xBF, 0xBD] { return "" }
            guard let cut = text[sent...].lastIndex(where: { $0 == 0x20 || $0 == 0x0A }) else { return "" }
            return take(text, upTo: cut + 1)
        }

        /// What is left once generation has stopped.
        public mutating func finish() throws(DLKitError) -> String {
            let text = Array(try decoded().utf8)
            return take(text, upTo: text.count)
        }

        mutating func take(_ text: [UInt8], upTo end: Int) -> String {
            guard end > sent else { return "" }
            defer { sent = end }
            return String(decoding: text[sent..<end], as: UTF8.self)
        }

        func decoded() throws(DLKitError) -> String {
            do { return try tokenizer.decode(ids) } catch { throw .huggingFace(error) }
        }
    }

    /// Tokenizes `text` with the folder's tokenizer.json, generates, and decodes the new ids.
    public func generate(text: String, maxTokens: Int, sampling: Sampling = .greedy,
                         onToken: (Int) -> Void = { _ in }) throws(DLKitError) -> (ids: [Int], text: String) {
        let tokenizer = try promptTokenizer()
        let ids = try generate(ids: tokenizer.encode(text).ids, maxTokens: maxTokens, sampling: sampling, onToken: onToken)
        do { return (ids, try tokenizer.decode(ids)) } catch { throw .huggingFace(error) }
    }

    /// `generate(text:)` with its text handed out as it comes: `onPiece` gets each new id with the
    /// text it completes (a `TextStream` piece, often empty; the last id's also holds the rest), so
    /// the pieces put together are the returned text. `onPiece` returns false to stop early (the
    /// reader went away): the ids and text so far are returned.
    public func stream(text: String, maxTokens: Int, sampling: Sampling = .greedy,
                       onPiece: (_ id: Int, _ text: String) -> Bool) throws(DLKitError) -> (ids: [Int], text: String) {
        let tokenizer = try promptTokenizer()
        var pieces = TextStream(tokenizer: tokenizer)
        let ids = try decode(tokenizer.encode(text).ids, maxTokens: maxTokens, sampling: sampling) { (id: Int, last: Bool) throws(DLKitError) -> Bool in
            var piece = try pieces.append(id)
            if last { piece += try pieces.finish() }
            return onPiece(id, piece)
        }
        do { return (ids, try tokenizer.decode(ids)) } catch { throw .huggingFace(error) }
    }

    func promptTokenizer() throws(DLKitError) -> HFTokenizer {
        guard let tokenizer else { throw .invalidArgument("\(folder.path): no tokenizer.json to tokenize the prompt") }
        return tokenizer
    }
}
