import DLTensor

/// The type of a value that is not a plain tensor: a sequence of tensors or an optional value
/// (ONNX `TypeProto.sequence_type` / `optional_type`). Plain tensors are described by `TensorType`.
public indirect enum ValueKind: Hashable, Sendable, CustomStringConvertible {
    case tensor(TensorType?)
    case sequence(ValueKind)
    case optional(ValueKind)

    public var description: String {
        switch self {
        case .tensor(let t): t.map(\.description) ?? "tensor"
        case .sequence(let e): "sequence<\(e)>"
        case .optional(let e): "optional<\(e)>"
        }
    }
}

/// A run-time value: a tensor, a sequence of values, or an optional that may hold a value.
/// Graph inputs, outputs and intermediates of the Sequence*/Optional* ops and of control flow.
public indirect enum GraphValue: Sendable {
    case tensor(Tensor)
    case sequence([GraphValue])
    /// nil is the empty optional.
    case optional(GraphValue?)

    /// The tensor when this is one (an optional holding a tensor counts).
    public var tensor: Tensor? {
        switch self {
        case .tensor(let t): t
        case .optional(let v?): v.tensor
        default: nil
        }
    }

    /// The elements when this is a sequence (an optional holding a sequence counts).
    public var sequence: [GraphValue]? {
        switch self {
        case .sequence(let s): s
        case .optional(let v?): v.sequence
        default: nil
        }
    }

    public var kindName: String {
        switch self {
        case .tensor: "tensor"
        case .sequence: "sequence"
        case .optional(nil): "empty optional"
        case .optional: "optional"
        }
    }
}
