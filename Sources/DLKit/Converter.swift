import DLCheckpoint
import DLGraph
import DLHuggingFace
import DLONNX
import DLOpenVINO
import DLTensor
import DLTFLite
import Foundation

/// Converts between the formats DLKit reads and writes. The input format is told by content,
/// the output format by the output's extension.
public enum Converter {
    public enum Target: String, Sendable, CaseIterable {
        case onnx, ckpt, safetensors, pt, tflite
        /// OpenVINO IR v11: `OUT.xml` and `OUT.bin` beside it.
        case xml
        /// Keras weights: `.weights.h5` in the Keras 3 layout, other `.h5` in the legacy layout.
        case kerasWeights = "weights.h5", h5
        /// A Hugging Face folder, named by its `config.json` (`OUTDIR/config.json`).
        case huggingFace = "hf"
        /// A TensorFlow.js layers-model: `OUTDIR/model.json` (any `.json` but `config.json`) and its shards.
        case tfjs = "json"

        /// The output format `url`'s name asks for; nil for a name DLKit does not write.
        public init?(_ url: URL) { self.init(path: url.path) }

        package init?(path: String) {
            if path.lowercased().hasSuffix(".weights.h5") { self = .kerasWeights; return }
            if URL(fileURLWithPath: path).lastPathComponent == "config.json" { self = .huggingFace; return }
            let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
            self.init(rawValue: ext == "pth" || ext == "bin" ? "pt" : ext)
        }
    }

    /// Converts `input` to `output`; the output appears whole or not at all.
    /// - Returns: the format detected for the input.
    @discardableResult
    /// - Parameters:
    ///   - key: selects part of a nested PyTorch checkpoint (`model`), see `StateDict(contentsOf:key:)`.
    ///   - dtype: converts floating-point weights (the graph is dropped: weights only).
    ///   - compressToFP16: OpenVINO IR output: float32 weights stored as f16 (+ Convert).
    public static func convert(from input: URL, to output: URL, key: String? = nil, dtype: DType? = nil,
                               compressToFP16: Bool = false) throws(DLKitError) -> FileFormat {
        guard let target = Target(path: output.path) else {
            throw .unsupportedOutput(path: output.path, reason: "unknown output extension; use .onnx, .ckpt, .tflite, .xml (OpenVINO IR), .safetensors, .pt, .pth, .bin, .h5, .weights.h5, FOLDER/config.json or FOLDER/model.json (TF.js)")
        }
        let format = try FileFormat.detect(path: input.path)
        let hasGraph = format.hasGraph
        switch target {
        case .huggingFace:
            guard key == nil, dtype == nil else { throw .settings(path: output.path, [.key, .dtype], "do not apply to a Hugging Face folder") }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try HFFolderWriter.write(graph, toFolder: output.deletingLastPathComponent())
        case .tfjs:
            guard key == nil, dtype == nil else { throw .settings(path: output.path, [.key, .dtype], "do not apply to a TF.js layers-model") }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try TFJSSupport.writeLayersModel(graph, to: output)
        case .kerasWeights, .h5:
            guard key == nil, dtype == nil else { throw .settings(path: output.path, [.key, .dtype], "do not apply to Keras weights") }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try KerasSupport.write(graph, to: output)
        case .safetensors, .pt:
            var weights = try StateDict(contentsOf: input, key: key)
            if let dtype { weights = try weights.converted(to: dtype) }
            try weights.write(to: output)
        case .tflite:
            guard hasGraph, key == nil, dtype == nil else {
                throw .unsupportedOutput(path: output.path, reason: "a .tflite file is written from a model (ONNX, .ckpt, Keras, TFLite), without a key or dtype")
            }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try write(graph, to: output)
        case .xml:
            guard key == nil, dtype == nil else { throw .settings(path: output.path, [.key, .dtype], "do not apply to OpenVINO IR") }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try write(graph, to: output, compressToFP16: compressToFP16)
        case .onnx, .ckpt:
            guard hasGraph, key == nil, dtype == nil else {
                // Weights only: an ONNX model or checkpoint holding just the initializers.
                var weights = try StateDict(contentsOf: input, key: key)
                if let dtype { weights = try weights.converted(to: dtype) }
                try weights.write(to: output)
                return format
            }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try write(graph, to: output)
        }
        return format
    }

    /// Writes a graph as ONNX, a checkpoint, TFLite or OpenVINO IR, by the output's extension;
    /// atomically. Weights a Hugging Face graph only carries go to a checkpoint alone.
    /// - Parameters:
    ///   - graph: the model to write.
    ///   - output: the file to write; its extension picks the format.
    ///   - compressToFP16: OpenVINO IR only: float32 weights stored as f16 (+ Convert).
    public static func write(_ graph: Graph, to output: URL, compressToFP16: Bool = false) throws(DLKitError) {
        if compressToFP16 && Target(path: output.path) != .xml {
            throw .settings(path: output.path, [.compressToFP16], "applies to OpenVINO IR (.xml) output only")
        }
        switch Target(path: output.path) {
        case .onnx?:
            do { try ONNXWriter.write(HFFolder.droppingCarriedWeights(graph), to: output.path) } catch { throw .onnx(error) }
        case .ckpt?:
            do { try Checkpoint(graph: graph).write(to: output.path) } catch { throw .checkpoint(error) }
        case .tflite?:
            do { try TFLiteWriter.write(HFFolder.droppingCarriedWeights(graph), to: output.path) } catch { throw .tflite(error) }
        case .xml?:
            do { try OpenVINOWriter.write(HFFolder.droppingCarriedWeights(graph), to: output.path, compressToFP16: compressToFP16) } catch { throw .openvino(error) }
        default:
            throw .unsupportedOutput(path: output.path, reason: "a graph is written as .onnx, .ckpt, .tflite or .xml")
        }
    }
}
