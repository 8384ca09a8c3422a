import DLGraph
import DLTensor
import Foundation

/// A Hugging Face model folder: config.json, the weights, and tokenizer.json when present.
public struct HFFolder: Sendable {
    public let path: String
    public let config: HFConfig
    public let weights: HFWeights

    /// Whether `path` is a folder holding a config.json (how DLKit tells an HF folder apart).
    public static func isFolder(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
            && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json"))
    }

    public init(path: String) throws(HFError) {
        self.path = path
        config = try HFConfig(path: (path as NSString).appendingPathComponent("config.json"))
        weights = try HFWeights(folder: path)
    }

    /// The architecture as an IR graph over the folder's mapped weights; an encoder of a
    /// sentence-transformers folder (modules.json) also gives `sentence_embedding`.
    /// - Parameters:
    ///   - cache: decoders: with the KV cache inputs and outputs (see `HFArchitecture.graph`).
    ///   - positionIds: with a `position_ids` input where the architecture takes one.
    ///   - fixedCache: with `cache`, a cache of fixed capacity (see `HFArchitecture.graph`).
    public func graph(cache: Bool = false, positionIds: Bool = false, fixedCache: Bool = false) throws(HFError) -> Graph {
        var g = try HFArchitecture.graph(config: config, weights: weights, cache: cache, positionIds: positionIds, fixedCache: fixedCache)
        if HFArchitecture.encoders.contains(config.modelType), let plan = try SentencePooling.plan(folder: path) {
            SentencePooling.add(plan, to: &g)
        }
        // Weights of the file the architecture does not read (an MLM or classification head on a
        // base encoder) travel as initializers no node reads, named in `carriedWeightsKey`, so a
        // folder -> .ckpt -> folder round trip gives back every tensor; writers of runnable
        // formats drop them (`droppingCarriedWeights`).
        var carried: [String] = []
        for (name, t) in weights.tensors where g.initializers[name] == nil {
            g.initializers[name] = t
            carried.append(name)
        }
        if !carried.isEmpty { g.metadata.metadataProps.append((Self.carriedWeightsKey, carried.joined(separator: "\n"))) }
        // The folder's own text files travel with the graph (.onnx/.ckpt metadata), so the model
        // can be written back as a folder (`HFFolder.carriedFiles`).
        for name in Self.carriedFiles {
            let p = (path as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: p), data.count <= Self.maxCarriedBytes,
                  let text = String(data: data, encoding: .utf8) else { continue }
            g.metadata.metadataProps.append((Self.filePropPrefix + name, text))
        }
        return g
    }

    /// Text files of a folder kept in a graph's metadata as `hf.file:<name>`: what
    /// `AutoModel`/`AutoTokenizer.from_pretrained` read besides the weights.
    public static let carriedFiles = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json", "vocab.txt", "merges.txt", "vocab.json"]
    public static let filePropPrefix = "hf.file:"
    static let maxCarriedBytes = 64 << 20

    /// The metadata key listing (one per line) the initializers a graph carries for writing the
    /// folder back but never reads.
    public static let carriedWeightsKey = "hf.carried_weights"

    /// `graph` without the weights it only carries (see `carriedWeightsKey`): what an .onnx,
    /// .tflite or OpenVINO output and a runtime want. A listed name that a node reads is kept.
    public static func droppingCarriedWeights(_ graph: Graph) -> Graph {
        guard let list = graph.metadata.metadataProps.first(where: { $0.key == carriedWeightsKey })?.value else { return graph }
        var g = graph
        var read = Set(g.outputs.map(\.name))
        for n in g.nodes { read.formUnion(n.inputs) }
        var initializers = NamedTensors()
        let carried = Set(list.split(separator: "\n").map(String.init))
        for (name, t) in g.initializers where !carried.contains(name) || read.contains(name) { initializers[name] = t }
        g.initializers = initializers
        g.metadata.metadataProps.removeAll { $0.key == carriedWeightsKey }
        return g
    }

    /// Names that the graph builders give their own constants (never a checkpoint's weights).
    public static func isBuilderConstant(_ name: String) -> Bool { name.hasPrefix("const/") || name.hasPrefix("pooling/") }

    /// Whether the architecture is a decoder (gives logits, generates).
    public var isDecoder: Bool { HFArchitecture.decoders.contains(config.modelType) }

    /// The ids that end generation: generation_config.json's eos_token_id, else config.json's.
    public func eosTokenIds() -> Set<Int> {
        var ids = Set<Int>()
        let gen = (path as NSString).appendingPathComponent("generation_config.json")
        for json in [(try? readJSONFile(gen, maxBytes: 1_000_000)), config.json] {
            guard let v = json?["eos_token_id"], !v.isNull else { continue }
            if let i = v.intValue { ids.insert(i) }
            for x in v.arrayValue ?? [] { if let i = x.intValue { ids.insert(i) } }
            if !ids.isEmpty { break }
        }
        return ids
    }

    /// How transformers pads a batch for this folder: tokenizer_config.json's `pad_token` (looked
    /// up in `tokenizer`) and `padding_side`, else config.json's `pad_token_id`, else id 0 on the
    /// right (gpt2-style folders have no pad token; padded positions are masked either way).
    public func batchPadding(tokenizer: HFTokenizer) -> HFTokenizer.BatchPadding {
        let cfg = try? readJSONFile((path as NSString).appendingPathComponent("tokenizer_config.json"), maxBytes: 10_000_000)
        let left = cfg?["padding_side"]?.stringValue == "left"
        let token = cfg?["pad_token"].flatMap { $0.stringValue ?? $0["content"]?.stringValue }
        if let token, let id = tokenizer.id(of: token) { return .init(id: id, left: left) }
        return .init(id: config.tokenId("pad_token_id") ?? 0, left: left)
    }

    /// The folder's tokenizer.json, nil when it has none.
    public func tokenizer() throws(HFError) -> HFTokenizer? {
        let p = (path as NSString).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try HFTokenizer(path: p)
    }
}
