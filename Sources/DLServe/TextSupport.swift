import DLKit
import DLSupport
import Foundation

/// What a served Hugging Face folder adds to its model: BYTES `text` (and `text_pair`) inputs
/// tokenized by the folder's tokenizer.json, and `generate` requests for decoders.
public struct TextSupport: Sendable {
    /// Nil when the folder has no tokenizer.json.
    public let feeds: TextFeeds?
    /// Nil for encoders.
    public let generator: TextGenerator?

    public init(feeds: TextFeeds?, generator: TextGenerator?) {
        self.feeds = feeds
        self.generator = generator
    }

    /// The text support of the model at `path`: nil unless it is a Hugging Face folder.
    /// `options`: how its generator runs.
    public static func load(path: String, options: RuntimeOptions = .default) throws(DLKitError) -> TextSupport? {
        guard (try? FileFormat.detect(path: path)) == .huggingFace else { return nil }
        let feeds = try TextFeeds(folder: URL(fileURLWithPath: path))
        let isDecoder: Bool
        do { isDecoder = try HFFolder(path: path).isDecoder } catch { throw .huggingFace(error) }
        let generator = isDecoder ? try TextGenerator(folder: URL(fileURLWithPath: path), options: options) : nil
        return TextSupport(feeds: feeds, generator: generator)
    }

    /// Request inputs that stand for the model's token inputs.
    static let inputNames: Set<String> = ["text", "text_pair"]

    /// How the text inputs appear in the model's metadata (after its own inputs).
    var metadataInputs: [JSON] {
        guard feeds != nil else { return [] }
        return ["text", "text_pair"].map { .object([("name", .string($0)), ("datatype", .string("BYTES")), ("shape", .array([.int(-1)]))]) }
    }

    /// Replaces `text` (and `text_pair`) in `inputs` by the token tensors the model takes.
    static func tokenize(_ inputs: inout [String: Tensor], with feeds: TextFeeds, model: Model, maxElements: Int) throws(ServeError) {
        guard let text = inputs.removeValue(forKey: "text") else {
            throw .badRequest("input 'text_pair' needs input 'text' (the first text of each pair)")
        }
        let pair = inputs.removeValue(forKey: "text_pair")
        for (name, t) in [("text", text), ("text_pair", pair)] {
            guard let t, t.rank != 1 || t.shape[0] == 0 else { continue }
            throw .badRequest("input '\(name)' has shape \(t.shape); text is a BYTES tensor of shape [N], N >= 1")
        }
        if let given = inputs.keys.sorted().first(where: TextFeeds.inputNames.contains) {
            throw .badRequest("input '\(given)' and input 'text' are both given; send the text, or the token inputs, not both")
        }
        do {
            let tokens = try feeds.feeds(texts: text.strings, pairs: pair?.strings, inputs: model.inputs, maxElements: maxElements)
            inputs.merge(tokens) { a, _ in a }
        } catch { throw .badRequest("input 'text': \(error)") }
    }
}
