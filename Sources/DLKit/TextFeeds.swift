import DLHuggingFace
import DLTensor
import Foundation

/// Model inputs from text with a Hugging Face folder's tokenizer: each text is tokenized as the
/// `tokenizers` library does (special tokens, truncation as configured) and the batch is padded to
/// its longest encoding as transformers pads it (`HFFolder.batchPadding`), giving `input_ids`,
/// `attention_mask`, and `token_type_ids` / `position_ids` when the model takes them.
///
/// ```swift
/// let model = try Model(contentsOf: URL(fileURLWithPath: "minilm"))
/// if let text = try TextFeeds(folder: URL(fileURLWithPath: "minilm")) {
///     let out = try model.run(try text.feeds(texts: ["Hello", "world"], inputs: model.inputs))
/// }
/// ```
public struct TextFeeds: Sendable {
    public let tokenizer: HFTokenizer
    public let padding: HFTokenizer.BatchPadding

    /// Reads `folder`'s tokenizer.json; nil when the folder has none.
    public init?(folder url: URL) throws(DLKitError) {
        do {
            let folder = try HFFolder(path: url.path)
            guard let t = try folder.tokenizer() else { return nil }
            tokenizer = t
            padding = folder.batchPadding(tokenizer: t)
        } catch { throw .huggingFace(error) }
    }

    /// The names of the inputs `feeds` fills.
    public static let inputNames: Set<String> = ["input_ids", "attention_mask", "token_type_ids", "position_ids"]

    /// The tensors for `texts` (and `pairs`, one per text, for models that take sentence pairs),
    /// shaped `[texts.count, longest]`, for each of `inputs` named in `inputNames`.
    /// `position_ids` count the unpadded tokens (0, 1, ... from the first real token; 1 on padding),
    /// so a left-padded row gets the positions it would have alone.
    /// - Throws: `DLKitError.invalidArgument` when there is no text, the pairs do not match the
    ///   texts, or the batch has more than `maxElements` tokens.
    public func feeds(texts: [String], pairs: [String]? = nil, inputs: [ValueInfo], maxElements: Int = 1 << 28) throws(DLKitError) -> [String: Tensor] {
        guard !texts.isEmpty else { throw .invalidArgument("no text to tokenize") }
        if let pairs, pairs.count != texts.count {
            throw .invalidArgument("\(texts.count) texts but \(pairs.count) pair texts; give one pair text per text")
        }
        let encodings = tokenizer.encodeBatch(texts, pairs: pairs, padding: padding)
        let length = encodings.first?.ids.count ?? 0
        let (count, overflow) = texts.count.multipliedReportingOverflow(by: length)
        guard !overflow, count <= maxElements else {
            throw .invalidArgument("\(texts.count) texts of up to \(length) tokens are over the limit of \(maxElements) elements")
        }
        let shape = [texts.count, length]
        func tensor(_ rows: (HFEncoding) -> [Int]) -> Tensor {
            Tensor(shape: shape, scalars: encodings.flatMap { rows($0).map(Int64.init) })
        }
        var out: [String: Tensor] = [:]
        for v in inputs where Self.inputNames.contains(v.name) {
            switch v.name {
            case "input_ids": out[v.name] = tensor(\.ids)
            case "attention_mask": out[v.name] = tensor(\.attentionMask)
            case "token_type_ids": out[v.name] = tensor(\.typeIds)
            default: out[v.name] = tensor(Self.positions)
            }
        }
        return out
    }

    /// Positions counting only the unmasked tokens (transformers' `cumsum(mask) - 1`, 1 where masked).
    static func positions(_ e: HFEncoding) -> [Int] {
        var next = 0
        return e.attentionMask.map { m in
            guard m != 0 else { return 1 }
            defer { next += 1 }
            return next
        }
    }
}
