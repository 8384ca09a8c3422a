import DLCheckpoint
import DLGraph
import DLHuggingFace
import DLONNX
import DLOpenVINO
import DLSafeTensors
import DLTensor
import DLTensorFlow
import DLTorch
import Foundation

/// Named weights, in file order: what a PyTorch file, safetensors file (single or sharded),
/// checkpoint or ONNX model's initializers hold. Tensors read from safetensors, checkpoints and
/// contiguous storages of PyTorch zip files are memory-mapped, not copied.
///
/// ```swift
/// let weights = try StateDict(contentsOf: URL(fileURLWithPath: "checkpoint.pt"), key: "model")
/// try weights.converted(to: .float16).write(to: URL(fileURLWithPath: "model.safetensors"))
/// ```
public struct StateDict: Sendable, Sequence {
    public var tensors: NamedTensors

    public init(_ tensors: NamedTensors = NamedTensors()) { self.tensors = tensors }

    /// Reads the weights of a `.pt`/`.pth`/`.bin` (zip, legacy or TorchScript), `.safetensors`,
    /// `model.safetensors.index.json`, `.ckpt` or `.onnx` file, a TensorFlow SavedModel folder or
    /// checkpoint (`ckpt-1.index` or the prefix `ckpt-1`); the format is told by content.
    /// - Parameters:
    ///   - url: the weights file or folder.
    ///   - key: a dotted path selecting part of the file: `model` in a training checkpoint
    ///     `{"model": ..., "optimizer": ...}`, `optimizer.state.0`. For formats without nesting it
    ///     keeps the tensors named `<key>.<rest>` and names them `<rest>`. Nil takes everything
    ///     (nested PyTorch values flattened to dotted names).
    public init(contentsOf url: URL, key: String? = nil) throws(DLKitError) {
        let path = url.path
        let format = try FileFormat.detect(path: path)
        var all: NamedTensors
        switch format {
        case .pytorchZip, .pytorchLegacy:
            do { tensors = try TorchFile(path: path).stateDict(key: key) } catch { throw .torch(error) }
            return
        case .safetensors, .checkpoint:
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile(path: path) } catch { throw .safetensors(error) }
            if format == .checkpoint {
                do { all = try Checkpoint(file: file, checkOps: false).graph.initializers } catch { throw .checkpoint(error) }
            } else {
                do { all = NamedTensors(try file.tensors().map { ($0.name, $0.tensor) }) } catch { throw .safetensors(error) }
            }
        case .safetensorsIndex:
            do { all = NamedTensors(try ShardedSafeTensors(path: path).tensors().map { ($0.name, $0.tensor) }) } catch { throw .safetensors(error) }
        case .onnx:
            do { all = try ONNXReader.read(path: path, checkOps: false).initializers } catch { throw .onnx(error) }
        case .hdf5, .keras:
            all = try KerasSupport.weights(path: path)
        case .openvino:
            do { all = try OpenVINOReader.read(path: path, checkOps: false).initializers } catch { throw .openvino(error) }
        case .savedModel, .tensorflowCheckpoint:
            let prefix = format == .savedModel ? path + "/variables/variables" : path
            do { all = try TensorBundle(path: prefix).tensors() } catch { throw .tensorflow(error) }
        case .tfjs:
            all = NamedTensors(try TFJSSupport.model(path).weights.map { ($0.name, $0.tensor) })
        case .tflite:
            all = try Model.loadGraph(path: path, checkOps: false).0.initializers
        case .huggingFace:
            do { all = try HFWeights(folder: path).tensors } catch { throw .huggingFace(error) }
        default:
            throw .unsupportedFormat(path: path, format: format, purpose: "as weights")
        }
        guard let key, !key.isEmpty else {
            tensors = all
            return
        }
        var picked = NamedTensors()
        for (name, t) in all {
            if name == key { picked[name] = t } else if name.hasPrefix(key + ".") { picked[String(name.dropFirst(key.count + 1))] = t }
        }
        guard !picked.isEmpty else {
            throw .invalidArgument("\(path): no tensor is named '\(key)' or starts with '\(key).'")
        }
        tensors = picked
    }

    public var names: [String] { tensors.names }
    public var count: Int { tensors.count }
    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> { tensors.makeIterator() }

    /// The same weights with every floating-point tensor converted to `dtype` (a float type);
    /// integer and bool tensors (step counts, masks, `num_batches_tracked`) are kept as they are.
    public func converted(to dtype: DType) throws(DLKitError) -> StateDict {
        guard dtype.isFloatingPoint else {
            throw .invalidArgument("weights convert to a floating-point dtype (float32, float16, bfloat16, float64), not \(dtype)")
        }
        var out = NamedTensors()
        for (name, t) in tensors { out[name] = t.dtype.isFloatingPoint ? t.converted(to: dtype) : t }
        return StateDict(out)
    }

    /// The weights formats `write(to:)` picks by extension.
    public enum OutputFormat: String, Sendable, CaseIterable {
        case pytorch, safetensors, checkpoint, onnx

        /// The output format `url`'s name asks for; nil for a name DLKit does not write.
        public init?(_ url: URL) { self.init(path: url.path) }

        package init?(path: String) {
            switch URL(fileURLWithPath: path).pathExtension.lowercased() {
            case "pt", "pth", "bin": self = .pytorch
            case "safetensors": self = .safetensors
            case "ckpt": self = .checkpoint
            case "onnx": self = .onnx
            default: return nil
            }
        }
    }

    /// Writes the weights atomically in the format the extension names: `.pt`/`.pth`/`.bin` as a
    /// `torch.save` zip of an `OrderedDict`, `.safetensors` with `{"format": "pt"}`, `.ckpt` and
    /// `.onnx` as a graph holding only these initializers.
    public func write(to url: URL) throws(DLKitError) {
        let path = url.path
        guard let format = OutputFormat(path: path) else {
            throw .unsupportedOutput(path: path, reason: "unknown weights extension; use .pt, .pth, .bin, .safetensors, .ckpt or .onnx")
        }
        switch format {
        case .pytorch:
            do { try TorchWriter.write(stateDict: tensors, to: path) } catch { throw .torch(error) }
        case .safetensors:
            try write(safetensorsTo: url)
        case .checkpoint, .onnx:
            try Converter.write(weightsGraph, to: url)
        }
    }

    /// Writes the weights as a safetensors file (atomically), with PyTorch's `format: pt` metadata.
    public func write(safetensorsTo url: URL) throws(DLKitError) {
        let list = tensors.filter { $0.tensor.dtype != .string }.map { (name: $0.name, tensor: $0.tensor) }
        do { try SafeTensorsWriter.write(list, metadata: ["format": "pt"], to: url.path) } catch { throw .safetensors(error) }
    }

    /// A graph with no nodes whose initializers are these weights: how weights travel as ONNX or `.ckpt`.
    public var weightsGraph: Graph {
        var g = Graph(name: "weights", inputs: [], outputs: [], nodes: [], initializers: tensors)
        g.metadata.producerName = "DLKit"
        return g
    }
}
