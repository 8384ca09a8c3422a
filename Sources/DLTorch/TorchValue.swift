import DLTensor

/// A value from a PyTorch pickle, after the restricted unpickler has built it.
///
/// Only data: numbers, strings, containers, tensors (as records pointing at their storage, read
/// on demand) and the few torch objects a weights file holds. TorchScript module objects become
/// `.object` with their attributes.
public indirect enum TorchValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits: little-endian two's complement bytes, as pickle stores it.
    case bigInt([UInt8])
    case float(Double)
    case complex(Double, Double)
    case string(String)
    case bytes([UInt8])
    case tuple([TorchValue])
    case list([TorchValue])
    case set([TorchValue])
    /// A dict or `OrderedDict`, in insertion order.
    case dict([TorchDictEntry])
    /// A tensor as the file records it; its bytes are read by `TorchFile.tensor(_:name:)`.
    case tensor(TorchTensorRef)
    /// A tensor held in memory: what writers take.
    case tensorData(Tensor)
    case dtype(TorchScalarType)
    case device(String)
    /// A TorchScript object (`__torch__.<class>`) and its attributes.
    case object(type: String, attributes: [TorchDictEntry])

    /// A short description of the kind of value, for listings and errors.
    public var kindDescription: String {
        switch self {
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): "\(i)"
        case .bigInt: "int"
        case .float(let f): "\(f)"
        case .complex(let r, let i): "complex(\(r), \(i))"
        case .string(let s): "'\(s.count > 40 ? String(s.prefix(40)) + "..." : s)'"
        case .bytes(let b): "bytes (\(b.count))"
        case .tuple(let a): "tuple (\(a.count))"
        case .list(let a): "list (\(a.count))"
        case .set(let a): "set (\(a.count))"
        case .dict(let d): "dict (\(d.count))"
        case .tensor(let t): "tensor \(t.scalarType) \(t.shape)"
        case .tensorData(let t): "tensor \(t.dtype) \(t.shape)"
        case .dtype(let d): "torch.\(d)"
        case .device(let d): "device '\(d)'"
        case .object(let type, _): "object \(type)"
        }
    }

    /// The member of a dict or object under string key `key`.
    public subscript(key: String) -> TorchValue? {
        switch self {
        case .dict(let entries):
            entries.last { if case .string(let k) = $0.key { k == key } else { false } }?.value
        case .object(_, let attributes):
            attributes.last { if case .string(let k) = $0.key { k == key } else { false } }?.value
        default: nil
        }
    }

    /// A string form of a dict key for dotted paths: strings as they are, integers in decimal.
    public var keyComponent: String? {
        switch self {
        case .string(let s): s
        case .int(let i): String(i)
        case .bool(let b): b ? "True" : "False"
        default: nil
        }
    }
}

/// One member of a dict.
public struct TorchDictEntry: Sendable {
    public var key: TorchValue
    public var value: TorchValue

    public init(_ key: TorchValue, _ value: TorchValue) {
        self.key = key
        self.value = value
    }
}

/// A storage a pickle refers to by persistent id: `('storage', type, key, location, numel)`.
public struct TorchStorageRef: Sendable, Hashable {
    /// The storage's key: its entry is `data/<key>` in a zip archive.
    public let key: String
    /// The element type of a typed storage; nil for `UntypedStorage` (bytes).
    public let scalarType: TorchScalarType?
    /// Elements for a typed storage, bytes for an untyped one, as the pickle says.
    public let declaredCount: Int
    /// Where it lived when saved (`cpu`, `cuda:0`); DLKit reads everything to the CPU.
    public let location: String
    /// Legacy files only: a view of the root storage `key` (`offset` and `count` in elements).
    public let view: LegacyView?

    public struct LegacyView: Sendable, Hashable {
        public let key: String
        public let offset: Int
        public let count: Int
    }
}

/// A tensor as `torch._utils._rebuild_tensor*` describes it; its bytes are not read yet.
public struct TorchTensorRef: Sendable {
    public let storage: TorchStorageRef
    public let scalarType: TorchScalarType
    /// Offset into the storage, in elements.
    public let storageOffset: Int
    /// Sizes as torch reports them (`[]` for 0-dim).
    public let size: [Int]
    /// Strides in elements.
    public let stride: [Int]
    public let requiresGrad: Bool
    /// True when the pickle wrapped it as `torch.nn.Parameter`.
    public var isParameter: Bool

    /// The DLKit dtype the tensor reads as (complex: its part type), nil when there is none.
    public var dtype: DType? { scalarType.dtype }
    /// The DLKit shape: `size`, plus a trailing 2 for complex types.
    public var shape: [Int] { scalarType.isComplex ? size + [2] : size }
    public var elementCount: Int { size.reduce(1) { $0 &* $1 } }
}
