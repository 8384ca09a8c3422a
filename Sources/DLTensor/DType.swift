/// The element type of a tensor.
///
/// The cases cover every ONNX `TensorProto.DataType` DLKit stores as fixed-width numbers, plus
/// `string`, which has no fixed width and is carried only by graphs (never by kernels).
public enum DType: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case float32, float64, float16, bfloat16
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case bool
    case string
    /// The 8-bit floats (OCP FP8 and the "fnuz" variants), the exponent-only scale type, the
    /// 4-bit float, and the 4- and 2-bit integers. In memory each element takes one byte (the
    /// sub-byte types unpacked, signed ones sign-extended); files pack them (`packedByteCount`).
    case float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0, float4e2m1
    case int4, uint4, int2, uint2

    /// Bytes per element; 0 for `string`, which has no fixed width.
    public var byteWidth: Int {
        switch self {
        case .bool, .int8, .uint8: 1
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: 1
        case .int4, .uint4, .int2, .uint2: 1
        case .float16, .bfloat16, .int16, .uint16: 2
        case .float32, .int32, .uint32: 4
        case .float64, .int64, .uint64: 8
        case .string: 0
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: true
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: true
        default: false
        }
    }

    /// Bits per element in files: 4 or 2 for the packed sub-byte types, else 8 x `byteWidth`.
    public var bitWidth: Int {
        switch self {
        case .int4, .uint4, .float4e2m1: 4
        case .int2, .uint2: 2
        default: byteWidth * 8
        }
    }

    /// Bytes `count` elements take in a file (sub-byte types packed, low bits first).
    public func packedByteCount(_ count: Int) -> Int { (count * bitWidth + 7) / 8 }

    /// True for the types kernels only convert (8-bit and smaller floats).
    public var isLowPrecisionFloat: Bool {
        switch self {
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: true
        default: false
        }
    }

    public var isInteger: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: true
        case .int4, .uint4, .int2, .uint2: true
        default: false
        }
    }

    public var description: String { rawValue }

    /// The number ONNX's `TensorProto.DataType` uses for this type.
    public var onnxCode: Int32 {
        switch self {
        case .float32: 1
        case .uint8: 2
        case .int8: 3
        case .uint16: 4
        case .int16: 5
        case .int32: 6
        case .int64: 7
        case .string: 8
        case .bool: 9
        case .float16: 10
        case .float64: 11
        case .uint32: 12
        case .uint64: 13
        case .bfloat16: 16
        case .float8e4m3fn: 17
        case .float8e4m3fnuz: 18
        case .float8e5m2: 19
        case .float8e5m2fnuz: 20
        case .uint4: 21
        case .int4: 22
        case .float4e2m1: 23
        case .float8e8m0: 24
        case .uint2: 25
        case .int2: 26
        }
    }

    /// The type ONNX's `TensorProto.DataType` number stands for, or nil when DLKit has no such type
    /// (complex, the 6-bit floats).
    public init?(onnxCode: Int32) {
        guard let t = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = t
    }

    /// The name safetensors uses in its header (`"F32"`, `"BF16"`, ...); nil for `string`.
    public var safetensorsName: String? {
        switch self {
        case .float32: "F32"
        case .float64: "F64"
        case .float16: "F16"
        case .bfloat16: "BF16"
        case .int8: "I8"
        case .int16: "I16"
        case .int32: "I32"
        case .int64: "I64"
        case .uint8: "U8"
        case .uint16: "U16"
        case .uint32: "U32"
        case .uint64: "U64"
        case .bool: "BOOL"
        case .float8e4m3fn: "F8_E4M3"
        case .float8e5m2: "F8_E5M2"
        case .float8e8m0: "F8_E8M0"
        case .string, .float8e4m3fnuz, .float8e5m2fnuz, .float4e2m1, .int4, .uint4, .int2, .uint2: nil
        }
    }

    public init?(safetensorsName: String) {
        guard let t = DType.allCases.first(where: { $0.safetensorsName == safetensorsName }) else {
            return nil
        }
        self = t
    }

    /// The datatype names of the Open Inference Protocol v2 (`"FP32"`, `"INT64"`, ...).
    public var inferenceProtocolName: String {
        switch self {
        case .float32: "FP32"
        case .float64: "FP64"
        case .float16: "FP16"
        case .bfloat16: "BF16"
        case .int8: "INT8"
        case .int16: "INT16"
        case .int32: "INT32"
        case .int64: "INT64"
        case .uint8: "UINT8"
        case .uint16: "UINT16"
        case .uint32: "UINT32"
        case .uint64: "UINT64"
        case .bool: "BOOL"
        case .string: "BYTES"
        // Not protocol types: named so errors can say what the model uses.
        case .float8e4m3fn: "FLOAT8E4M3FN"
        case .float8e4m3fnuz: "FLOAT8E4M3FNUZ"
        case .float8e5m2: "FLOAT8E5M2"
        case .float8e5m2fnuz: "FLOAT8E5M2FNUZ"
        case .float8e8m0: "FLOAT8E8M0"
        case .float4e2m1: "FLOAT4E2M1"
        case .int4: "INT4"
        case .uint4: "UINT4"
        case .int2: "INT2"
        case .uint2: "UINT2"
        }
    }

    public init?(inferenceProtocolName: String) {
        guard let t = DType.allCases.first(where: { $0.inferenceProtocolName == inferenceProtocolName })
        else { return nil }
        self = t
    }
}
