import DLTensor

/// A PyTorch element type as pickles name it: by storage class (`torch.FloatStorage`) or by dtype
/// object (`torch.float32`).
///
/// DLKit's `DType` covers most of them. Complex types are read as their real and imaginary parts
/// (a trailing dimension of 2, as `torch.view_as_real` gives); the others (quantized, float8,
/// sub-byte) are known by name so an error can say which one a tensor has.
public struct TorchScalarType: Sendable, Hashable, CustomStringConvertible {
    /// The `torch.<name>` dtype name: `float32`, `complex64`, `qint8`, ...
    public let name: String
    /// Bytes per element; 0 when unknown.
    public let elementSize: Int
    /// The DLKit type the elements are read as (complex: the part type), nil when none fits.
    public let dtype: DType?
    /// True for complex types, read as pairs of `dtype`.
    public let isComplex: Bool

    public var description: String { name }

    init(_ name: String, _ size: Int, _ dtype: DType?, complex: Bool = false) {
        self.name = name
        elementSize = size
        self.dtype = dtype
        isComplex = complex
    }

    /// Every type by its `torch.<name>` dtype name.
    static let all: [TorchScalarType] = [
        .init("float32", 4, .float32), .init("float64", 8, .float64), .init("float16", 2, .float16),
        .init("bfloat16", 2, .bfloat16), .init("int64", 8, .int64), .init("int32", 4, .int32),
        .init("int16", 2, .int16), .init("int8", 1, .int8), .init("uint8", 1, .uint8), .init("bool", 1, .bool),
        .init("uint16", 2, .uint16), .init("uint32", 4, .uint32), .init("uint64", 8, .uint64),
        .init("complex64", 8, .float32, complex: true), .init("complex128", 16, .float64, complex: true),
        .init("complex32", 4, .float16, complex: true),
        .init("qint8", 1, nil), .init("quint8", 1, nil), .init("qint32", 4, nil),
        .init("quint4x2", 1, nil), .init("quint2x4", 1, nil),
        .init("float8_e5m2", 1, nil), .init("float8_e4m3fn", 1, nil), .init("float8_e5m2fnuz", 1, nil),
        .init("float8_e4m3fnuz", 1, nil), .init("float8_e8m0fnu", 1, nil), .init("float4_e2m1fn_x2", 1, nil),
        .init("bits8", 1, nil), .init("bits16", 2, nil), .init("bits1x8", 1, nil), .init("bits2x4", 1, nil),
        .init("bits4x2", 1, nil),
        .init("uint1", 1, nil), .init("uint2", 1, nil), .init("uint3", 1, nil), .init("uint4", 1, nil),
        .init("uint5", 1, nil), .init("uint6", 1, nil), .init("uint7", 1, nil),
        .init("int1", 1, nil), .init("int2", 1, nil), .init("int3", 1, nil), .init("int4", 1, nil),
        .init("int5", 1, nil), .init("int6", 1, nil), .init("int7", 1, nil),
    ]
    private static let byName: [String: TorchScalarType] = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

    /// Other names torch gives the same dtypes (`torch.float`, `torch.long`, `torch.half`, ...).
    private static let aliases: [String: String] = [
        "float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
        "short": "int16", "cfloat": "complex64", "cdouble": "complex128", "chalf": "complex32",
    ]

    /// The storage classes `torch.<X>Storage` and the dtype each holds.
    private static let storageClasses: [String: String] = [
        "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
        "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
        "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
        "ComplexDoubleStorage": "complex128", "ComplexFloatStorage": "complex64",
        "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
        "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4",
    ]

    /// The type of dtype object `torch.<name>`, or nil when `name` is no dtype.
    public init?(dtypeName name: String) {
        guard let t = Self.byName[Self.aliases[name] ?? name] else { return nil }
        self = t
    }

    /// The element type of storage class `torch.<name>` (`FloatStorage`, also `cuda.FloatStorage`).
    init?(storageClass name: String) {
        let base = name.hasPrefix("cuda.") ? String(name.dropFirst(5)) : name
        guard let d = Self.storageClasses[base], let t = Self.byName[d] else { return nil }
        self = t
    }

    /// True when `torch.<name>` is a storage class.
    static func isStorageClass(_ name: String) -> Bool {
        name == "UntypedStorage" || name == "storage.UntypedStorage" || name == "storage.TypedStorage"
            || TorchScalarType(storageClass: name) != nil
    }

    /// The storage class name torch writes for a DLKit dtype (`FloatStorage`), nil for types that
    /// torch saves with an untyped storage and `_rebuild_tensor_v3`.
    static func storageClass(for dtype: DType) -> String? {
        switch dtype {
        case .float32: "FloatStorage"
        case .float64: "DoubleStorage"
        case .float16: "HalfStorage"
        case .bfloat16: "BFloat16Storage"
        case .int64: "LongStorage"
        case .int32: "IntStorage"
        case .int16: "ShortStorage"
        case .int8: "CharStorage"
        case .uint8: "ByteStorage"
        case .bool: "BoolStorage"
        case .uint16, .uint32, .uint64, .string: nil
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1,
             .int4, .uint4, .int2, .uint2: nil
        }
    }

    /// The torch dtype name of a DLKit dtype.
    static func name(of dtype: DType) -> String {
        switch dtype {
        case .float32: "float32"
        case .float64: "float64"
        case .float16: "float16"
        case .bfloat16: "bfloat16"
        case .int64: "int64"
        case .int32: "int32"
        case .int16: "int16"
        case .int8: "int8"
        case .uint8: "uint8"
        case .bool: "bool"
        case .uint16: "uint16"
        case .uint32: "uint32"
        case .uint64: "uint64"
        case .string: "string"
        case .float8e4m3fn: "float8_e4m3fn"
        case .float8e4m3fnuz: "float8_e4m3fnuz"
        case .float8e5m2: "float8_e5m2"
        case .float8e5m2fnuz: "float8_e5m2fnuz"
        case .float8e8m0: "float8_e8m0fnu"
        case .float4e2m1, .int4, .uint4, .int2, .uint2: "\(dtype)"
        }
    }
}
