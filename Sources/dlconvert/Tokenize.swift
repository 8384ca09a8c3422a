import ArgumentParser
import DLKit
import DLSupport
import Foundation

/// `dlconvert tokenize HFDIR`: one text per stdin line in, one JSON object of ids per line out.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize stdin, one text per line, with a Hugging Face folder's tokenizer.json.",
        discussion: """
            Prints {"input_ids":[...],"attention_mask":[...]} per line, the ids the `tokenizers`
            library gives (special tokens, truncation and padding as the tokenizer.json configures).
            """)

    @Argument(help: "A Hugging Face model folder holding tokenizer.json, or a tokenizer.json file.")
    var folder: String

    @Flag(help: "Also print token_type_ids.")
    var tokenTypeIds = false

    func run() throws {
        try reportingErrors {
            let path = folder.hasSuffix(".json") ? folder : (folder as NSString).appendingPathComponent("tokenizer.json")
            let tokenizer: HFTokenizer
            do { tokenizer = try HFTokenizer(path: path) } catch let e as HFError { throw DLKitError.huggingFace(e) }
            while let line = readLine(strippingNewline: true) {
                let e = tokenizer.encode(line)
                var fields: [(String, JSON)] = [("input_ids", .array(e.ids.map { .int($0) })),
                                                ("attention_mask", .array(e.attentionMask.map { .int($0) }))]
                if tokenTypeIds { fields.append(("token_type_ids", .array(e.typeIds.map { .int($0) }))) }
                print(JSON.object(fields).serialized())
            }
        }
    }
}
