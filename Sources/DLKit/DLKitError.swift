import DLCheckpoint
import DLHuggingFace
import DLKeras
import DLGraph
import DLONNX
import DLOpenVINO
import DLRuntime
import DLSafeTensors
import DLTensorFlow
import DLTFLite
import DLTorch
import DLTraining

/// Errors of the user-facing API. Each wraps the error of the layer that found the problem, whose
/// message names the file, tensor or node.
public enum DLKitError: Error, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case unsupportedFormat(path: String, format: FileFormat, purpose: String)
    case unsupportedOutput(path: String, reason: String)
    case onnx(ONNXError)
    case safetensors(SafeTensorsError)
    case checkpoint(CheckpointError)
    case torch(TorchError)
    /// Weights that do not fit a model: names missing or unused, shapes or dtypes that differ.
    case weightsMismatch(path: String, problems: [String])
    case runtime(RuntimeError)
    case invalidArgument(String)
    /// Conversion settings that do not fit the output: `problem` follows their names.
    case settings(path: String, [ConversionSetting], String)
    /// Inputs that could not be made for a model (`ModelComparison.randomInputs`).
    case inputs([ModelComparison.InputProblem])
    case weightBinding(WeightBindingError)
    case keras(KerasError)
    case openvino(OpenVINOError)
    case tensorflow(TensorFlowError)
    case tflite(TFLiteError)
    case huggingFace(HFError)
    case training(TrainingError)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): "\(p): \(r)"
        case .unsupportedFormat(let p, let f, let purpose):
            f == .unknown ? "\(p): not a format DLKit recognises (ONNX, .ckpt, safetensors, PyTorch, Keras .h5/.weights.h5/.keras, TensorFlow SavedModel/checkpoint/TF.js, TFLite, OpenVINO .xml, Hugging Face folder)"
                : "\(p): \(f.rawValue) files cannot be used \(purpose) yet"
        case .unsupportedOutput(let p, let r): "\(p): \(r)"
        case .onnx(let e): "\(e)"
        case .safetensors(let e): "\(e)"
        case .checkpoint(let e): "\(e)"
        case .torch(let e): "\(e)"
        case .weightsMismatch(let p, let problems):
            "\(p): the weights do not fit the model: \(problems.prefix(8).joined(separator: "; "))\(problems.count > 8 ? "; and \(problems.count - 8) more" : "")"
        case .runtime(let e): "\(e)"
        case .invalidArgument(let m): m
        case .settings(let p, let names, let problem): "\(p): \(Self.list(names.map(\.rawValue))) \(problem)"
        case .inputs(let problems): problems.map(\.description).joined(separator: "; ")
        case .weightBinding(let e): "\(e)"
        case .keras(let e): "\(e)"
        case .openvino(let e): "\(e)"
        case .tensorflow(let e): "\(e)"
        case .tflite(let e): "\(e)"
        case .huggingFace(let e): "\(e)"
        case .training(let e): "\(e)"
        }
    }
}

extension DLKitError {
    /// "a", "a and b", "a, b and c".
    static func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " and " + (items.last ?? "")
    }

    /// `error` as a DLKit error: the layer's own error wrapped in its case, other errors by message.
    package static func wrapping(_ error: any Error) -> DLKitError {
        switch error {
        case let e as DLKitError: e
        case let e as TrainingError: .training(e)
        case let e as RuntimeError: .runtime(e)
        case let e as CheckpointError: .checkpoint(e)
        default: .invalidArgument("\(error)")
        }
    }

    /// The message with each conversion setting spelled by `spelling` (a tool's flag names).
    public func description(spelling: (ConversionSetting) -> String) -> String {
        switch self {
        case .settings(let p, let names, let problem): "\(p): \(Self.list(names.map(spelling))) \(problem)"
        case .weightBinding(let e) where e.refusedMissing: "\(e); \(spelling(.allowMissing)) keeps the graph's values for missing tensors"
        default: description
        }
    }
}
