import DLCheckpoint
import DLGraph
import DLHuggingFace
import DLONNX
import DLTensor
import DLTFLite
import Foundation

/// Choices for `Converter.convert(from:to:options:)` beyond the input and output paths.
public struct ConversionOptions: Sendable {
    /// Opset and external data of an `.onnx` output.
    public var onnx: ONNXWriteOptions
    /// When set, the input is read as weights only and bound onto this model's graph.
    public var graph: URL?
    /// With `graph`: graph initializers the weights lack keep the graph's values.
    public var allowMissing: Bool
    /// Selects part of a nested PyTorch checkpoint (a dotted path such as `model`).
    public var key: String?
    /// Converts floating-point weights to this type (weights-only outputs).
    public var dtype: DType?
    /// OpenVINO IR output: float32 weights stored as f16 Const + Convert (OpenVINO's default).
    public var compressToFP16: Bool = false
    /// The signature of a TensorFlow SavedModel to convert (default `serving_default`).
    public var signature: String?
    /// How a `.tflite` output stores convolution and fully connected weights.
    public var tfliteQuantize: TFLiteWriter.Quantize = .none
    /// A Hugging Face decoder folder written as ONNX carries its KV cache (`past_key_values.<i>.key/value`
    /// in, `present.<i>.key/value` out, the optimum / ONNX Runtime GenAI layout); false: logits only.
    public var kvCache = true

    public init(onnx: ONNXWriteOptions = ONNXWriteOptions(), graph: URL? = nil, allowMissing: Bool = false,
                key: String? = nil, dtype: DType? = nil) {
        self.onnx = onnx
        self.graph = graph
        self.allowMissing = allowMissing
        self.key = key
        self.dtype = dtype
    }
}

/// A setting of `ConversionOptions`, as errors name it. A front end maps each to its own spelling
/// (`dlconvert` to its flags).
public enum ConversionSetting: String, Sendable, CaseIterable {
    case opset, externalData = "external data", allowMissing = "allow-missing", key, dtype
    case compressToFP16 = "fp16 compression", tfliteQuantize = "quantization"
}

/// What a conversion did, for a front end to report.
public struct ConversionReport: Sendable {
    public var inputFormat: FileFormat
    public var onnx: ONNXWriteReport?
    public var binding: WeightBinding.Report?

    /// Facts a user should hear about (on stderr): an automatic switch to external data,
    /// converted nodes, initializers kept from the graph.
    public var notes: [String] {
        var n: [String] = []
        if let o = onnx, o.switchedToExternalData, let data = o.dataPath {
            n.append("the model would be \(o.inlineModelBytes) bytes, over the 2 GiB protobuf limit: wrote \(o.externalTensors) tensors (\(o.externalBytes) bytes) as external data to \(data)")
        }
        if let o = onnx, o.convertedNodes > 0 {
            n.append("rewrote \(o.convertedNodes) node\(o.convertedNodes == 1 ? "" : "s") for opset \(o.opset)")
        }
        if let b = binding, !b.missing.isEmpty {
            n.append("kept the graph's own values for \(b.missing.count) tensor\(b.missing.count == 1 ? "" : "s") the weights lack: \(b.missing.joined(separator: ", "))")
        }
        if let b = binding, !b.converted.isEmpty {
            let list = b.converted.map { "\($0.name) (\($0.from) → \($0.to))" }.joined(separator: ", ")
            n.append("converted \(b.converted.count) tensor\(b.converted.count == 1 ? "" : "s") to the graph's dtype: \(list)")
        }
        return n
    }
}

extension Converter {
    /// Converts `input` to `output` with `options`; the output appears whole or not at all
    /// (with external data: neither the model nor its `.data` file on failure).
    ///
    /// With `options.graph` the input is any weights file `StateDict` reads (safetensors,
    /// `.ckpt`, `.onnx`, and PyTorch files where supported), bound by name onto that model's
    /// graph (see `WeightBinding`), and the output is `.onnx` or `.ckpt`.
    public static func convert(from input: URL, to output: URL, options: ConversionOptions) throws(DLKitError) -> ConversionReport {
        guard let target = Target(path: output.path) else {
            throw .unsupportedOutput(path: output.path, reason: "unknown output extension; use .onnx, .ckpt, .tflite, .xml (OpenVINO IR), .safetensors, .pt, .pth, .bin, .h5, .weights.h5, FOLDER/config.json or FOLDER/model.json (TF.js)")
        }
        let format = try FileFormat.detect(path: input.path)
        var report = ConversionReport(inputFormat: format)
        let onnxOptionsSet = options.onnx.opset != nil || options.onnx.externalData != .automatic
        if onnxOptionsSet && target != .onnx {
            throw .settings(path: output.path, [.opset, .externalData], "apply to .onnx output only")
        }
        if options.tfliteQuantize != .none && target != .tflite {
            throw .settings(path: output.path, [.tfliteQuantize], "applies to .tflite output only")
        }
        if target == .tflite, options.graph == nil, options.key == nil, options.dtype == nil, format.hasGraph {
            let (graph, _) = try Model.loadGraph(path: input.path)
            do { try TFLiteWriter.write(HFFolder.droppingCarriedWeights(graph), to: output.path, quantize: options.tfliteQuantize) } catch { throw .tflite(error) }
            return report
        }
        if options.compressToFP16 && target != .xml {
            throw .settings(path: output.path, [.compressToFP16], "applies to OpenVINO IR (.xml) output only")
        }
        guard let graphURL = options.graph else {
            guard target == .onnx, format.hasGraph, options.key == nil, options.dtype == nil else {
                // Weights-only outputs, and weights files (PyTorch, safetensors) to any format.
                try convert(from: input, to: output, key: options.key, dtype: options.dtype, compressToFP16: options.compressToFP16)
                return report
            }
            let (graph, _) = try Model.loadGraph(path: input.path, signature: options.signature, hfCache: options.kvCache)
            report.onnx = try write(graph, toONNX: output, options: options.onnx)
            return report
        }
        if let kerasGraph = try KerasSupport.graph(weights: input, model: graphURL) {
            if target == .onnx {
                report.onnx = try write(kerasGraph, toONNX: output, options: options.onnx)
            } else if target == .kerasWeights || target == .h5 {
                try KerasSupport.write(kerasGraph, to: output)
            } else if target == .tfjs {
                try TFJSSupport.writeLayersModel(kerasGraph, to: output)
            } else {
                try write(kerasGraph, to: output)
            }
            return report
        }
        guard target == .onnx || target == .ckpt || target == .xml else {
            throw .invalidArgument("\(output.path): weights bound onto a graph are written as .onnx, .ckpt or .xml")
        }
        let weights = try StateDict(contentsOf: input, key: options.key)
        let (graph, _) = try Model.loadGraph(path: graphURL.path)
        let bound = try WeightBinding.bind(weights, onto: graph, policy: WeightBinding.Policy(allowMissing: options.allowMissing),
                                           weightsName: input.path, graphName: graphURL.path)
        report.binding = bound
        if target == .onnx {
            report.onnx = try write(bound.graph, toONNX: output, options: options.onnx)
        } else {
            try write(bound.graph, to: output, compressToFP16: options.compressToFP16)
        }
        return report
    }

    /// Writes a graph as ONNX with `options` (opset, external data), atomically.
    public static func write(_ graph: Graph, toONNX output: URL, options: ONNXWriteOptions) throws(DLKitError) -> ONNXWriteReport {
        do { return try ONNXWriter.write(HFFolder.droppingCarriedWeights(graph), to: output.path, options: options) } catch { throw .onnx(error) }
    }
}
