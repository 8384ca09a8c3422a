import DLAutograd
import DLCheckpoint
import DLGraph
import DLONNX
import DLTraining
import Foundation

/// The parts of a training session that need DLKit's file formats: a model to train from any
/// format DLKit reads, and PyTorch optimizer state attached in the parameter order of a torch
/// state_dict.
extension TrainingSession {
    /// A model to train: an ONNX file, a Keras model (`.h5` with a config, or `.keras`), or a
    /// `.ckpt` with the training state it may hold.
    public static func load(path: String) throws(DLKitError) -> (graph: Graph, state: TrainingState?) {
        if path.lowercased().hasSuffix(".onnx") {
            do { return (try ONNXReader.read(path: path), nil) } catch { throw .onnx(error) }
        }
        let format = try FileFormat.detect(path: path)
        if format == .hdf5 || format == .keras {
            return (try KerasSupport.graph(path: path), nil)
        }
        do {
            let c = try Checkpoint(contentsOf: path)
            return (c.graph, c.training)
        } catch { throw .checkpoint(error) }
    }

    /// Reads the `.ckpt` at `checkpoint`, adds the PyTorch optimizer state at `optimizer` (for the
    /// trainable parameters in PyTorch's order: the order of `weightsSource` when it is a torch
    /// state_dict, else the graph's initializer order) and writes the result to `path` atomically.
    public static func attachTorchState(checkpoint: String, optimizer: String, key: String?, weightsSource: String, to path: String) throws(DLKitError) {
        var c: Checkpoint
        do { c = try Checkpoint(contentsOf: checkpoint) } catch { throw .checkpoint(error) }
        let trainable = Differentiator.trainableParameters(of: c.graph)
        var order = trainable
        let format = try FileFormat.detect(path: weightsSource)
        if format == .pytorchZip || format == .pytorchLegacy {
            let sd = try StateDict(contentsOf: URL(fileURLWithPath: weightsSource))
            let set = Set(trainable)
            let fromTorch = sd.tensors.names.filter { set.contains($0) }
            if fromTorch.count == trainable.count { order = fromTorch }
        }
        var shapes: [String: [Int]] = [:]
        for p in order { shapes[p] = c.graph.initializers[p]?.shape }
        do { c.training = try importTorch(path: optimizer, key: key, parameters: order, shapes: shapes) } catch { throw .training(error) }
        do { try c.write(to: path) } catch { throw .checkpoint(error) }
    }
}
