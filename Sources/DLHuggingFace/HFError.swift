import DLSafeTensors
import DLTorch

/// Why a Hugging Face folder could not be read, always naming the file and what is wrong in it.
public enum HFError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A file of the folder is missing or unreadable.
    case cannotRead(path: String, reason: String)
    /// config.json, tokenizer.json or an index is not valid JSON or lacks/mistypes a field.
    case invalid(path: String, reason: String)
    /// The folder is well formed but asks for something DLKit does not build (an architecture, a
    /// rope scaling, a tokenizer model).
    case unsupported(path: String, reason: String)
    /// The weights do not match what the config describes (missing, wrong shape or dtype).
    case weights(path: String, reason: String)
    /// The safetensors reader's own error (its message names the file).
    case safetensors(SafeTensorsError)
    /// The PyTorch reader's own error (its message names the file).
    case torch(TorchError)

    public var description: String {
        switch self {
        case .cannotRead(let p, let r): "\(p): cannot read: \(r)"
        case .invalid(let p, let r): "\(p): \(r)"
        case .unsupported(let p, let r): "\(p): not supported: \(r)"
        case .weights(let p, let r): "\(p): \(r)"
        case .safetensors(let e): "\(e)"
        case .torch(let e): "\(e)"
        }
    }
}
