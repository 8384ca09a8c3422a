import ArgumentParser
import DLKit
import DLSupport
import Foundation

/// `dlconvert generate HFDIR`: greedy text generation with a decoder folder, one prompt per stdin line.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue each stdin line with a Hugging Face decoder folder (greedy or sampled, KV cache).",
        discussion: """
            Prints {"text_output":"...","token_ids":[...]} per line: the new tokens (ending at the
            model's eos token, which is kept in token_ids) and their text (special tokens left out).
            With --stream, each new token is first printed as it comes, {"token_id":N,"text":"..."}
            (the text it completes, whole words at a time; the last token's holds the rest), then
            the line above.
            """)

    @Argument(help: "A Hugging Face decoder folder (gpt2, llama, mistral, qwen2) with tokenizer.json.")
    var folder: String

    @Option(help: "Generate at most this many tokens per prompt.")
    var maxTokens = 32

    @Option(help: "0: greedy; above 0: sample from the logits divided by this.")
    var temperature = 0.0

    @Option(help: "Sample among the K most likely tokens only (0: all).")
    var topK = 0

    @Option(help: "Sample among the most likely tokens whose probabilities add up to P.")
    var topP = 1.0

    @Option(help: "Seed of the sampler (the same seed gives the same tokens).")
    var seed: UInt32 = 0

    @Option(help: "Threads running the model.")
    var threads = 1

    @Flag(help: ArgumentHelp("Also print the time of the prompt and of the new tokens after the first to stderr, one JSON line per prompt.",
                             discussion: "{\"prompt_tokens\",\"new_tokens\",\"first_token_seconds\",\"decode_seconds\"} (scripts/bench/hf_bench.py)"))
    var timing = false

    @Flag(help: "Print each token as it is generated, one JSON line each, before the prompt's summary line.")
    var stream = false

    @Flag(help: "Grow the KV cache by one slot per token instead of in blocks (new shapes, so a new plan, every step; for comparison).")
    var growingCache = false

    func run() throws {
        try reportingErrors {
            guard maxTokens > 0, threads > 0 else { throw DLKitError.invalidArgument("--max-tokens and --threads must be positive") }
            Model.setThreadCount(threads, environment: ProcessInfo.processInfo.environment)
            let gen = try TextGenerator(folder: URL(fileURLWithPath: folder), options: RuntimeOptions(environment: ProcessInfo.processInfo.environment),
                                        fixedCache: !growingCache)
            while let line = readLine(strippingNewline: true) {
                let sampling = TextGenerator.Sampling(temperature: temperature, topK: topK, topP: topP, seed: seed)
                let start = DispatchTime.now().uptimeNanoseconds
                var first: UInt64 = 0
                let (ids, text): ([Int], String)
                if stream {
                    (ids, text) = try gen.stream(text: line, maxTokens: maxTokens, sampling: sampling) { id, piece in
                        if first == 0 { first = DispatchTime.now().uptimeNanoseconds }
                        emit(JSON.object([("token_id", .int(id)), ("text", .string(piece))]))
                        return true
                    }
                } else {
                    (ids, text) = try gen.generate(text: line, maxTokens: maxTokens, sampling: sampling) { _ in
                        if first == 0 { first = DispatchTime.now().uptimeNanoseconds }
                    }
                }
                let end = DispatchTime.now().uptimeNanoseconds
                emit(JSON.object([("text_output", .string(text)), ("token_ids", .array(ids.map { .int($0) }))]))
                if timing {
                    let prompt = gen.tokenizer?.encode(line).ids.count ?? 0
                    let stats = JSON.object([("prompt_tokens", .int(prompt)), ("new_tokens", .int(ids.count)),
                                             ("first_token_seconds", .float(Double(first - start) / 1e9)),
                                             ("decode_seconds", .float(Double(end - first) / 1e9))])
                    FileHandle.standardError.write(Data((stats.serialized() + "\n").utf8))
                }
            }
        }
    }

    /// One line of output, written at once (unbuffered: a streamed token shows as it comes).
    func emit(_ line: JSON) {
        FileHandle.standardOutput.write(Data((line.serialized() + "\n").utf8))
    }
}
