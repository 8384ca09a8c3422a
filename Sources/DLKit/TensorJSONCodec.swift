import DLTensor
import Foundation

/// Tensors as the Open Inference Protocol v2 writes them in JSON: `shape`, `datatype` and `data`
/// (flat or nested, row-major), or `data` as base64 of the little-endian bytes when the tensor's
/// `parameters.data_encoding` is `"base64"`.
public enum TensorJSONCodec {
    /// Largest element count a request may declare (2^28, 1 GiB of float32); checked before any
    /// allocation so a request cannot make the server allocate without bound.
    public static let maxElements = 1 << 28

    /// Decodes one tensor of a request. `label` names it in errors (e.g. "input 'x'").
    public static func decode(_ json: JSON, label: String) throws(ServeError) -> (name: String, tensor: Tensor) {
        guard case .object = json else { throw .badRequest("\(label) must be an object") }
        guard case .string(let name)? = json["name"] else { throw .badRequest("\(label) has no \"name\" string") }
        let label = "input '\(name)'"
        guard case .string(let typeName)? = json["datatype"] else { throw .badRequest("\(label) has no \"datatype\" string") }
        guard let dtype = DType(inferenceProtocolName: typeName), dtype != .string, dtype != .bfloat16 else {
            throw .badRequest("\(label) has datatype '\(typeName)'; supported: BOOL, UINT8-64, INT8-64, FP16, FP32, FP64")
        }
        guard case .array(let dimsJSON)? = json["shape"] else { throw .badRequest("\(label) has no \"shape\" array") }
        var shape: [Int] = []
        for d in dimsJSON {
            guard case .number(let text) = d, let v = Int(text), v >= 0 else {
                throw .badRequest("\(label) has shape entry \(d.serialized()); sizes are non-negative integers")
            }
            shape.append(v)
        }
        guard let count = ShapeMath.elementCount(shape), count <= maxElements else {
            throw .badRequest("\(label) shape \(shape) has more than \(maxElements) elements")
        }
        guard let data = json["data"] else { throw .badRequest("\(label) has no \"data\"") }
        var encoding = "json"
        if case .string(let e)? = json["parameters"]?["data_encoding"] { encoding = e }
        if encoding == "base64" {
            guard case .string(let b64) = data, let bytes = Data(base64Encoded: b64) else {
                throw .badRequest("\(label) data is not a base64 string")
            }
            do {
                let t = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws(TensorError) in
                    try Tensor(dtype: dtype, shape: shape, bytes: raw)
                }
                return (name, t)
            } catch let e as TensorError { throw .badRequest("\(label): \(e)") } catch {
                throw .badRequest("\(label): \(error)")
            }
        }
        guard encoding == "json" else { throw .badRequest("\(label) has data_encoding '\(encoding)'; use \"json\" or \"base64\"") }
        var flat: [JSON] = []
        flat.reserveCapacity(count)
        try flatten(data, into: &flat, limit: count, label: label)
        guard flat.count == count else {
            throw .badRequest("\(label) has \(flat.count) values, shape \(shape) needs \(count)")
        }
        var tensor = Tensor(zeros: dtype, shape: shape)
        try fill(&tensor, from: flat, label: label)
        return (name, tensor)
    }

    static func flatten(_ v: JSON, into out: inout [JSON], limit: Int, label: String) throws(ServeError) {
        if case .array(let items) = v {
            for i in items { try flatten(i, into: &out, limit: limit, label: label) }
        } else {
            guard out.count < limit else { throw .badRequest("\(label) has more values than its shape holds") }
            out.append(v)
        }
    }

    static func fill(_ t: inout Tensor, from values: [JSON], label: String) throws(ServeError) {
        func number(_ v: JSON, _ i: Int) throws(ServeError) -> Double {
            switch v {
            case .number(let s): if let d = Double(s) { return d }
            case .string("NaN"): return .nan
            case .string("Infinity"): return .infinity
            case .string("-Infinity"): return -.infinity
            default: break
            }
            throw .badRequest("\(label) value \(i) is \(v.serialized()), not a number")
        }
        func integer<I: FixedWidthInteger>(_ v: JSON, _ i: Int, _: I.Type) throws(ServeError) -> I {
            if case .number(let s) = v {
                if let x = I(s) { return x }
                if let d = Double(s), d == d.rounded(), let x = I(exactly: d) { return x }
            }
            throw .badRequest("\(label) value \(i) is \(v.serialized()), not an integer in the range of \(I.self)")
        }
        func store<T: TensorScalar>(_: T.Type, _ convert: (JSON, Int) throws(ServeError) -> T) throws(ServeError) {
            var failure: ServeError?
            t.withUnsafeMutableBufferPointer(as: T.self) { buf in
                do throws(ServeError) {
                    for i in values.indices { buf[i] = try convert(values[i], i) }
                } catch { failure = error }
            }
            if let failure { throw failure }
        }
        switch t.dtype {
        case .float32: try store(Float.self) { (v, i) throws(ServeError) in Float(try number(v, i)) }
        case .float64: try store(Double.self) { (v, i) throws(ServeError) in try number(v, i) }
        case .float16:
            var bits: [UInt16] = []
            for (i, v) in values.enumerated() { bits.append(HalfConversion.halfBits(from: Float(try number(v, i)))) }
            t.withUnsafeMutableBytes { dst in bits.withUnsafeBytes { dst.copyMemory(from: $0) } }
        case .int8: try store(Int8.self) { (v, i) throws(ServeError) in try integer(v, i, Int8.self) }
        case .int16: try store(Int16.self) { (v, i) throws(ServeError) in try integer(v, i, Int16.self) }
        case .int32: try store(Int32.self) { (v, i) throws(ServeError) in try integer(v, i, Int32.self) }
        case .int64: try store(Int64.self) { (v, i) throws(ServeError) in try integer(v, i, Int64.self) }
        case .uint8: try store(UInt8.self) { (v, i) throws(ServeError) in try integer(v, i, UInt8.self) }
        case .uint16: try store(UInt16.self) { (v, i) throws(ServeError) in try integer(v, i, UInt16.self) }
        case .uint32: try store(UInt32.self) { (v, i) throws(ServeError) in try integer(v, i, UInt32.self) }
        case .uint64: try store(UInt64.self) { (v, i) throws(ServeError) in try integer(v, i, UInt64.self) }
        case .bool:
            try store(Bool.self) { (v, i) throws(ServeError) in
                switch v {
                case .bool(let b): return b
                case .number("0"): return false
                case .number("1"): return true
                default: throw .badRequest("\(label) value \(i) is \(v.serialized()), not a boolean")
                }
            }
        case .bfloat16, .string, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0,
             .float4e2m1, .int4, .uint4, .int2, .uint2:
            throw .badRequest("\(label) has an unsupported datatype \(t.dtype.inferenceProtocolName)")
        }
    }

    /// Encodes one output tensor: flat `data`, or base64 when `base64` is set.
    public static func encode(name: String, tensor t: Tensor, base64: Bool = false) -> JSON {
        var fields: [(String, JSON)] = [
            ("name", .string(name)),
            ("shape", .array(t.shape.map { .int($0) })),
            ("datatype", .string(t.dtype.inferenceProtocolName)),
        ]
        if base64 {
            fields.append(("parameters", .object([("data_encoding", .string("base64"))])))
            fields.append(("data", .string(t.withUnsafeBytes { Data($0).base64EncodedString() })))
            return .object(fields)
        }
        var data: [JSON] = []
        data.reserveCapacity(t.elementCount)
        switch t.dtype {
        case .float32: t.withUnsafeBufferPointer(as: Float.self) { for v in $0 { data.append(.float(v)) } }
        case .float64: t.withUnsafeBufferPointer(as: Double.self) { for v in $0 { data.append(.float(v)) } }
        case .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            for v in t.doubles() { data.append(.float(Float(v))) }
        case .int4, .int2: t.withUnsafeBufferPointer(as: Int8.self) { for v in $0 { data.append(.int(v)) } }
        case .uint4, .uint2: t.withUnsafeBufferPointer(as: UInt8.self) { for v in $0 { data.append(.int(v)) } }
        case .bool: t.withUnsafeBytes { for b in $0 { data.append(.bool(b != 0)) } }
        case .int8: t.withUnsafeBufferPointer(as: Int8.self) { for v in $0 { data.append(.int(v)) } }
        case .int16: t.withUnsafeBufferPointer(as: Int16.self) { for v in $0 { data.append(.int(v)) } }
        case .int32: t.withUnsafeBufferPointer(as: Int32.self) { for v in $0 { data.append(.int(v)) } }
        case .int64: t.withUnsafeBufferPointer(as: Int64.self) { for v in $0 { data.append(.int(v)) } }
        case .uint8: t.withUnsafeBufferPointer(as: UInt8.self) { for v in $0 { data.append(.int(v)) } }
        case .uint16: t.withUnsafeBufferPointer(as: UInt16.self) { for v in $0 { data.append(.int(v)) } }
        case .uint32: t.withUnsafeBufferPointer(as: UInt32.self) { for v in $0 { data.append(.int(v)) } }
        case .uint64: t.withUnsafeBufferPointer(as: UInt64.self) { for v in $0 { data.append(.int(v)) } }
        case .string: for s in t.strings { data.append(.string(s)) }
        }
        fields.append(("data", .array(data)))
        return .object(fields)
    }
}

/// Why a request was refused; the message goes back in `{"error": ...}`.
public enum ServeError: Error, CustomStringConvertible {
    case badRequest(String)
    case model(DLKitError)

    public var description: String {
        switch self {
        case .badRequest(let m): m
        case .model(let e): "\(e)"
        }
    }
}
