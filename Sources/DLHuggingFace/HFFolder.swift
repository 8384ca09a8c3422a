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
    public func graph() throws(HFError) -> Graph {
        var g = try HFArchitecture.graph(config: config, weights: weights)
        if HFArchitecture.encoders.contains(config.modelType), let plan = try SentencePooling.plan(folder: path) {
            SentencePooling.add(plan, to: &g)
        }
        return g
    }

    /// The folder's tokenizer.json, nil when it has none.
    public func tokenizer() throws(HFError) -> HFTokenizer? {
        let p = (path as NSString).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try HFTokenizer(path: p)
    }
}
