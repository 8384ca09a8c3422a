import DLCheckpoint
import DLGraph
import DLONNX
import DLTensor
import Foundation

/// Converts between the formats DLKit reads and writes. The input format is told by content,
/// the output format by the output's extension.
public enum Converter {
    public enum Target: String, Sendable, CaseIterable {
        case onnx, ckpt, safetensors

        public init?(path: String) {
            let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
            self.init(rawValue: ext)
        }
    }

    /// Converts `input` to `output`; the output appears whole or not at all.
    /// - Returns: the format detected for the input.
    @discardableResult
    public static func convert(from input: URL, to output: URL) throws(DLKitError) -> FileFormat {
        guard let target = Target(path: output.path) else {
            throw .unsupportedOutput(path: output.path, reason: "unknown output extension; use .onnx, .ckpt or .safetensors")
        }
        let format = try FileFormat.detect(path: input.path)
        switch target {
        case .safetensors:
            try StateDict(contentsOf: input).write(safetensorsTo: output)
        case .onnx, .ckpt:
            guard format == .onnx || format == .checkpoint else {
                if format == .safetensors {
                    throw .unsupportedFormat(path: input.path, format: format, purpose: "to make a .\(target.rawValue): it holds weights but no graph")
                }
                throw .unsupportedFormat(path: input.path, format: format, purpose: "for conversion")
            }
            let (graph, _) = try Model.loadGraph(path: input.path)
            try write(graph, to: output)
        }
        return format
    }

    /// Writes a graph as ONNX or as a checkpoint, by the output's extension; atomically.
    public static func write(_ graph: Graph, to output: URL) throws(DLKitError) {
        switch Target(path: output.path) {
        case .onnx?:
            do { try ONNXWriter.write(graph, to: output.path) } catch { throw .onnx(error) }
        case .ckpt?:
            do { try Checkpoint(graph: graph).write(to: output.path) } catch { throw .checkpoint(error) }
        default:
            throw .unsupportedOutput(path: output.path, reason: "a graph is written as .onnx or .ckpt")
        }
    }
}
