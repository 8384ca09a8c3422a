import DLGraph
import DLHuggingFace
import DLRuntime
import DLTensor
import Foundation

/// Text generation with a decoder of a Hugging Face folder (gpt2, llama, mistral, qwen2): the
/// prompt runs once, then each new token is one step over the KV cache (`present.<i>.*` fed back
/// as `past_key_values.<i>.*`). Greedy: the token of the highest logit, the lowest id on a tie.
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
    let cacheInputs: [(name: String, shape: [Int])]

    public init(folder url: URL) throws(DLKitError) {
        do {
            folder = try HFFolder(path: url.path)
            guard folder.isDecoder else {
                throw HFError.unsupported(path: url.path, reason: "generation with model_type '\(folder.config.modelType)' (a decoder is needed)")
            }
            tokenizer = try folder.tokenizer()
            eos = folder.eosTokenIds()
            let graph = try folder.graph(cache: true)
            var cache: [(String, [Int])] = []
            for i in graph.inputs where i.name.hasPrefix("past_key_values.") {
                // [batch, kv heads, past, head dim]: the heads and head size are fixed in the graph
                cache.append((i.name, [1, i.type?.dims?[1].value ?? 0, 0, i.type?.dims?[3].value ?? 0]))
            }
            cacheInputs = cache
            do { executor = try Executor(graph: graph) } catch { throw DLKitError.runtime(error) }
        } catch let e as HFError { throw .huggingFace(e) } catch let e as DLKitError { throw e } catch {
            throw .invalidArgument("\(url.path): \(error)")
        }
    }

    /// Greedy continuation of `prompt` (token ids): at most `maxTokens` new ids, ending early at an eos id (kept).
    public func generate(ids prompt: [Int], maxTokens: Int) throws(DLKitError) -> [Int] {
        guard !prompt.isEmpty else { throw .invalidArgument("generation needs a prompt of at least one token") }
        var feeds: [String: Tensor] = [:]
        for (name, shape) in cacheInputs { feeds[name] = Tensor(zeros: .float32, shape: shape) }
        var next = prompt
        var total = 0
        var out: [Int] = []
        while out.count < maxTokens {
            total += next.count
            feeds["input_ids"] = Tensor(shape: [1, next.count], scalars: next.map(Int64.init))
            feeds["attention_mask"] = Tensor(shape: [1, total], scalars: [Int64](repeating: 1, count: total))
            let result: [String: Tensor]
            do { result = try executor.run(feeds) } catch { throw .runtime(error) }
            guard let logits = result["logits"], logits.rank == 3 else { throw .invalidArgument("the decoder gave no logits") }
            let vocab = logits.shape[2], last = (logits.shape[1] - 1) * vocab
            let id: Int = logits.withUnsafeBufferPointer(as: Float.self) { p in
                var best = last
                for j in last..<(last + vocab) where p[j] > p[best] { best = j }
                return best - last
            }
            out.append(id)
            if eos.contains(id) { break }
            for (name, _) in cacheInputs {
                feeds[name] = result["present." + name.dropFirst("past_key_values.".count)]
            }
            next = [id]
        }
        return out
    }

    /// Tokenizes `text` with the folder's tokenizer.json, generates, and decodes the new ids.
    public func generate(text: String, maxTokens: Int) throws(DLKitError) -> (ids: [Int], text: String) {
        guard let tokenizer else { throw .invalidArgument("\(folder.path): no tokenizer.json to tokenize the prompt") }
        let ids = try generate(ids: tokenizer.encode(text).ids, maxTokens: maxTokens)
        do { return (ids, try tokenizer.decode(ids)) } catch { throw .huggingFace(error) }
    }
}
