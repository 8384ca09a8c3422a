import DLTensor

/// What a graph knows of a value before it runs: element type and, when known, its dimensions.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    /// nil when even the rank is unknown.
    public var dims: [Dim]?

    public init(dtype: DType, dims: [Dim]?) {
        self.dtype = dtype
        self.dims = dims
    }

    public init(dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.dims = shape.map { .fixed($0) }
    }

    public var rank: Int? { dims?.count }

    public var description: String {
        guard let dims else { return "\(dtype)[?]" }
        return "\(dtype)[\(dims.map(\.description).joined(separator: ","))]"
    }

    /// True when a tensor of `shape` and `dtype` fits this type: same dtype and rank, fixed dims equal.
    /// Symbolic and unknown dims accept any size.
    public func accepts(dtype other: DType, shape: [Int]) -> Bool {
        guard other == dtype else { return false }
        guard let dims else { return true }
        guard dims.count == shape.count else { return false }
        for (d, s) in zip(dims, shape) {
            if case .fixed(let v) = d, v != s { return false }
        }
        return true
    }
}

/// A named graph input, output or intermediate value with its type, when known.
public struct ValueInfo: Hashable, Sendable {
    public var name: String
    public var type: TensorType?
    /// Set when the value is a sequence or an optional (then `type` is nil); nil for tensors.
    public var container: ValueKind?
    public var docString: String

    public init(name: String, type: TensorType?, docString: String = "") {
        self.name = name
        self.type = type
        self.container = nil
        self.docString = docString
    }

    public init(name: String, container: ValueKind, docString: String = "") {
        self.name = name
        self.type = nil
        self.container = container
        self.docString = docString
    }
}
