import DLAutograd
import DLCheckpoint
import DLImage
import DLSafeTensors
import DLTorch

/// Training errors, one line each, naming what is wrong. Errors of the layers below (autograd,
/// checkpoints, torch files, safetensors, images) are wrapped, not flattened to text, so a
/// caller can still tell them apart.
public enum TrainingError: Error, CustomStringConvertible {
    case badTarget(String)
    case badData(String)
    case nonFiniteLoss(step: Int, loss: Double)
    case nonFiniteGradient(step: Int, parameter: String)
    case autograd(AutogradError)
    case badState(String)
    /// A setting that cannot work (an unknown metric or monitor, impossible schedule numbers).
    case badSetting(String)
    /// A data file that cannot be read as what its name says.
    case cannotRead(path: String, reason: String)
    /// Optimizer state that does not fit the model's parameters (each problem listed).
    case weightsMismatch(path: String, problems: [String])
    case checkpoint(CheckpointError)
    case torch(TorchError)
    case safetensors(SafeTensorsError)
    case image(ImageError)

    /// A NaN or infinite loss or gradient (training stopped before the update).
    public var isNonFinite: Bool {
        switch self {
        case .nonFiniteLoss, .nonFiniteGradient: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .badTarget(let s): "target: \(s)"
        case .badData(let s): "data: \(s)"
        case .nonFiniteLoss(let step, let loss): "the loss became \(loss) at step \(step); stopped"
        case .nonFiniteGradient(let step, let p): "the gradient of '\(p)' became NaN or infinite at step \(step); stopped"
        case .autograd(let e): "\(e)"
        case .badState(let s): s
        case .badSetting(let s): s
        case .cannotRead(let p, let r): "\(p): \(r)"
        case .weightsMismatch(let p, let problems):
            "\(p): the weights do not fit the model: \(problems.prefix(8).joined(separator: "; "))\(problems.count > 8 ? "; and \(problems.count - 8) more" : "")"
        case .checkpoint(let e): "\(e)"
        case .torch(let e): "\(e)"
        case .safetensors(let e): "\(e)"
        case .image(let e): "\(e)"
        }
    }
}
