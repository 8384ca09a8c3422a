import DLGraph
import DLHuggingFace
import DLSupport
import DLTensor
import Foundation

/// Writes a model read from a Hugging Face folder (directly, or after .ckpt/.onnx and training)
/// back as a folder `AutoModel.from_pretrained` loads: the carried config.json and tokenizer
/// files (`hf.file:*` metadata) and model.safetensors with the weights under their HF names.
enum HFFolderWriter {
    static func write(_ graph: Graph, toFolder folder: URL) throws(DLKitError) {
        let files = graph.metadata.metadataProps.filter { $0.key.hasPrefix(HFFolder.filePropPrefix) }
        guard files.contains(where: { $0.key == HFFolder.filePropPrefix + "config.json" }) else {
            throw .unsupportedOutput(path: folder.path, reason: "the model carries no Hugging Face config.json (it was not read from a Hugging Face folder)")
        }
        var weights = NamedTensors()
        for (name, t) in graph.initializers where !HFFolder.isBuilderConstant(name) { weights[name] = t }
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw .cannotRead(path: folder.path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        // Weights first: a folder is a model once config.json is there, so it comes last.
        try StateDict(weights).write(safetensorsTo: folder.appendingPathComponent("model.safetensors"))
        let config = HFFolder.filePropPrefix + "config.json"
        for (key, text) in files.filter({ $0.key != config }) + files.filter({ $0.key == config }) {
            let name = String(key.dropFirst(HFFolder.filePropPrefix.count))
            guard HFFolder.carriedFiles.contains(name) else { continue }
            let path = folder.appendingPathComponent(name).path
            do {
                let w = try AtomicFileWriter(path: path)
                try w.write(text)
                try w.commit()
            } catch { throw .cannotRead(path: path, reason: "cannot write: \(error)") }
        }
    }
}
