import DLHuggingFace
import DLSupport
import DLTensor

/// libFuzzer entry for the Hugging Face folder readers. The first byte picks what the rest is:
/// even: a tokenizer.json, read and then used on a few texts (accents, CJK, emoji, odd spaces)
/// and to decode ids back;
/// odd: a config.json, read and built into a graph (over no weights: the config is checked first).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHuggingFace(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 1 else { return 0 }
    let body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    guard let json = try? JSONParser.parse(body) else { return 0 }
    if data[0] & 1 == 0 {
        guard let tok = try? HFTokenizer(json: json, path: "tokenizer.json") else { return 0 }
        for text in ["Hello world!", "Café naïve 日本語 😀👍🏽", "  a\tb\u{00a0}c  ", ""] {
            _ = tok.encode(text, pair: "second")
            _ = try? tok.decode(tok.encode(text).ids + Array(0..<64))
        }
    } else {
        guard let config = try? HFConfig(json: json, path: "config.json") else { return 0 }
        _ = try? HFArchitecture.graph(config: config, weights: HFWeights(path: "weights", tensors: NamedTensors()))
    }
    return 0
}
