import ArgumentParser
import DLKit
import Foundation

/// `dlconvert generate HFDIR`: greedy text generation with a decoder folder, one prompt per stdin line.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue each stdin line with a Hugging Face decoder folder (greedy or sampled, KV cache).",
        discussion: """
            Prints {"text_output":"...","token_ids":[...]} per line: the new tokens (ending at the
            model's eos token, which is kept in token_ids) and their text (special tokens left out).
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

    func run() throws {
        try reportingErrors {
            guard maxTokens > 0 else { throw DLKitError.invalidArgument("--max-tokens must be positive") }
            let gen = try TextGenerator(folder: URL(fileURLWithPath: folder))
            while let line = readLine(strippingNewline: true) {
                let sampling = TextGenerator.Sampling(temperature: temperature, topK: topK, topP: topP, seed: seed)
                let (ids, text) = try gen.generate(text: line, maxTokens: maxTokens, sampling: sampling)
                print(JSON.object([("text_output", .string(text)), ("token_ids", .array(ids.map { .int($0) }))]).serialized())
            }
        }
    }
}
