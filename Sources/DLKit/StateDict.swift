import DLCheckpoint
import DLGraph
import DLONNX
import DLSafeTensors
import DLTensor
import Foundation

/// Named weights, in file order: what a checkpoint, safetensors file or ONNX model's initializers
/// hold. Tensors read from safetensors and checkpoints are memory-mapped, not copied.
///
/// ```swift
/// let weights = try StateDict(contentsOf: URL(fileURLWithPath: "mlp.ckpt"))
/// let w = weights["fc1.weight"]
/// ```
public struct StateDict: Sendable, Sequence {
    public var tensors: NamedTensors

    public init(_ tensors: NamedTensors = NamedTensors()) { self.tensors = tensors }

    /// Reads the weights of a `.ckpt`, `.safetensors` or `.onnx` file.
    public init(contentsOf url: URL) throws(DLKitError) {
        let path = url.path
        let format = try FileFormat.detect(path: path)
        switch format {
        case .safetensors, .checkpoint:
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile(path: path) } catch { throw .safetensors(error) }
            if format == .checkpoint {
                do { tensors = try Checkpoint(file: file, checkOps: false).graph.initializers } catch { throw .checkpoint(error) }
            } else {
                do { tensors = NamedTensors(try file.tensors().map { ($0.name, $0.tensor) }) } catch { throw .safetensors(error) }
            }
        case .onnx:
            do { tensors = try ONNXReader.read(path: path, checkOps: false).initializers } catch { throw .onnx(error) }
        default:
            throw .unsupportedFormat(path: path, format: format, purpose: "as weights")
        }
    }

    public var names: [String] { tensors.names }
    public var count: Int { tensors.count }
    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> { tensors.makeIterator() }

    /// Writes the weights as a safetensors file (atomically), with PyTorch's `format: pt` metadata.
    public func write(safetensorsTo url: URL) throws(DLKitError) {
        let list = tensors.filter { $0.tensor.dtype != .string }.map { (name: $0.name, tensor: $0.tensor) }
        do { try SafeTensorsWriter.write(list, metadata: ["format": "pt"], to: url.path) } catch { throw .safetensors(error) }
    }
}
