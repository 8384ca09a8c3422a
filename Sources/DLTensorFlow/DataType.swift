import CTensorFlowProtos
import DLTensor

/// TensorFlow's `DataType` codes and their DLKit element types.
enum TFDataType {
    /// The element type of code `code`, nil for types DLKit does not hold (complex, quantized,
    /// resource, variant, the `_REF` forms of graphs are mapped to their value type).
    static func dtype(_ code: Tensorflow__DataType) -> DType? {
        let raw = code.rawValue > 100 ? code.rawValue - 100 : code.rawValue
        switch raw {
        case 1: return .float32
        case 2: return .float64
        case 3: return .int32
        case 4: return .uint8
        case 5: return .int16
        case 6: return .int8
        case 7: return .string
        case 9: return .int64
        case 10: return .bool
        case 14: return .bfloat16
        case 17: return .uint16
        case 19: return .float16
        case 22: return .uint32
        case 23: return .uint64
        case 24: return .float8e5m2
        case 25: return .float8e4m3fn
        case 26: return .float8e4m3fnuz
        case 28: return .float8e5m2fnuz
        case 29: return .int4
        case 30: return .uint4
        case 31: return .int2
        case 32: return .uint2
        case 33: return .float4e2m1
        default: return nil
        }
    }

    /// A name for messages: `DT_FLOAT`-style for the codes DLKit refuses.
    static func name(_ code: Tensorflow__DataType) -> String {
        switch code.rawValue {
        case 0: "DT_INVALID"
        case 8: "DT_COMPLEX64"
        case 11: "DT_QINT8"
        case 12: "DT_QUINT8"
        case 13: "DT_QINT32"
        case 15: "DT_QINT16"
        case 16: "DT_QUINT16"
        case 18: "DT_COMPLEX128"
        case 20: "DT_RESOURCE"
        case 21: "DT_VARIANT"
        case 27: "DT_FLOAT8_E4M3B11FNUZ"
        default: dtype(code).map { "\($0)" } ?? "data type \(code.rawValue)"
        }
    }
}
