import DLCheckpoint
import DLGraph
import DLONNX
import DLSafeTensors
import DLSupport
import DLTensor
import Foundation

/// What `dlconvert inspect` reports: format, inputs and outputs, tensors, op counts, parameters.
public struct ModelSummary: Sendable {
    public struct Value: Sendable {
        public var name: String
        public var dtype: DType?
        public var dims: [Dim]?
    }

    public var format: FileFormat
    public var inputs: [Value]
    public var outputs: [Value]
    public var tensors: [Value]
    public var ops: [String: Int]
    public var parameters: Int
    public var opset: Int?
    public var producer: String?
    /// The nested contents of a PyTorch file (checkpoint dicts, optimizer state); empty otherwise.
    public var contents: [ContentLine] = []

    init(format: FileFormat) {
        self.format = format
        inputs = []
        outputs = []
        tensors = []
        ops = [:]
        parameters = 0
    }

    /// Describes any ONNX, checkpoint or safetensors file, including models with ops DLKit
    /// cannot run yet.
    public init(contentsOf url: URL) throws(DLKitError) {
        let path = url.path
        format = try FileFormat.detect(path: path)
        switch format {
        case .onnx, .checkpoint, .keras, .savedModel, .tfjs, .tflite, .huggingFace, .openvino, .hdf5 where KerasSupport.hasModel(path: path):
            let (g, _) = try Model.loadGraph(path: path, checkOps: false)
            inputs = g.inputs.map { Value(name: $0.name, dtype: $0.type?.dtype, dims: $0.type?.dims) }
            outputs = g.outputs.map { Value(name: $0.name, dtype: $0.type?.dtype, dims: $0.type?.dims) }
            tensors = g.initializers.map { Value(name: $0.name, dtype: $0.tensor.dtype, dims: [Dim]($0.tensor.shape)) }
            ops = g.opCounts
            parameters = g.parameterCount
            opset = g.metadata.onnxOpset
            producer = g.metadata.producerName.isEmpty ? nil : g.metadata.producerName
        case .safetensors, .hdf5, .tensorflowCheckpoint:
            let sd = try StateDict(contentsOf: url)
            inputs = []
            outputs = []
            tensors = sd.map { Value(name: $0.name, dtype: $0.tensor.dtype, dims: [Dim]($0.tensor.shape)) }
            ops = [:]
            parameters = sd.reduce(0) { $0 + $1.tensor.elementCount }
        case .pytorchZip, .pytorchLegacy:
            self = try Self.torch(path: path, format: format)
        case .safetensorsIndex:
            self = try Self.sharded(path: path)
        default:
            throw .unsupportedFormat(path: path, format: format, purpose: "for inspection")
        }
        // A Keras 3 file of a trained model also holds its optimizer's variables: listed as
        // tensors `optimizer/vars/<i>` (not parameters) and under the optimizer's name.
        if format == .keras || format == .hdf5, let opt = KerasSupport.optimizer(path: path) {
            contents.append(ContentLine(path: "optimizer", key: "optimizer", depth: 0, kind: opt.name))
            for (name, t) in opt.variables {
                tensors.append(Value(name: name, dtype: t.dtype, dims: [Dim](t.shape)))
                contents.append(ContentLine(path: name, key: String(name.dropFirst("optimizer/".count)), depth: 1, kind: "tensor",
                                            dtype: t.dtype, shape: t.shape))
            }
        }
    }

    package var json: JSON {
        func value(_ v: Value) -> JSON {
            var fields: [(String, JSON)] = [("name", .string(v.name))]
            if let dims = v.dims {
                fields.append(("shape", .array(dims.map { .int($0.value ?? -1) })))
                if dims.contains(where: { if case .symbolic = $0 { true } else { false } }) {
                    fields.append(("dim_params", .array(dims.map { if case .symbolic(let s) = $0 { .string(s) } else { .null } })))
                }
            } else {
                fields.append(("shape", .null))
            }
            fields.append(("datatype", v.dtype.map { .string($0.inferenceProtocolName) } ?? .null))
            return .object(fields)
        }
        var o: [(String, JSON)] = [("format", .string(format.rawValue))]
        if let opset { o.append(("opset", .int(opset))) }
        if let producer { o.append(("producer", .string(producer))) }
        o += [
            ("inputs", .array(inputs.map(value))),
            ("outputs", .array(outputs.map(value))),
            ("tensors", .array(tensors.map(value))),
            ("ops", .object(ops.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
            ("parameters", .int(parameters)),
        ]
        if !contents.isEmpty { o.append(("contents", contentsJSON)) }
        return .object(o)
    }

    /// A readable multi-line report.
    public var text: String {
        func line(_ v: Value) -> String {
            let shape = v.dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "[?]"
            return "  \(v.name): \(v.dtype?.rawValue ?? "?") \(shape)"
        }
        var s = "format: \(format.rawValue)\n"
        if let opset { s += "opset: \(opset)\n" }
        if let producer { s += "producer: \(producer)\n" }
        if !inputs.isEmpty { s += "inputs:\n" + inputs.map(line).joined(separator: "\n") + "\n" }
        if !outputs.isEmpty { s += "outputs:\n" + outputs.map(line).joined(separator: "\n") + "\n" }
        if !ops.isEmpty {
            s += "ops:\n" + ops.sorted { $0.key < $1.key }.map { "  \($0.key): \($0.value)" }.joined(separator: "\n") + "\n"
        }
        s += contentsText
        s += "tensors: \(tensors.count)\nparameters: \(parameters)\n"
        return s
    }
}
