import DLKit
import DLSupport
import DLTensor

/// Tensors as the Open Inference Protocol v2 writes them in JSON: `name`, `shape`, `datatype` and
/// `data` (flat, row-major), or `data` as base64 of the little-endian bytes with
/// `"parameters":{"data_encoding":"base64"}`.
///
/// Answers are written as bytes straight from the tensor: floats in the shortest text that reads
/// back to the same value of their own type (FP32 as Float, FP16 as Float16, not widened to
/// Double), NaN and infinities as the strings "NaN", "Infinity", "-Infinity", integers exactly,
/// BOOL as true/false. Decoding lives in `TensorDataDecoder` (it reads from the request's bytes).
public enum TensorJSONCodec {
    /// Appends `{"name":...,"shape":[...],"datatype":"...","data":...}` for `tensor` to `out`;
    /// for `.binary`, `"parameters":{"binary_data_size":N}` in place of `data` (the bytes are
    /// appended separately, after the whole JSON, by `appendBinary`).
    public static func encode(name: String, tensor t: Tensor, encoding: OutputEncoding = .json, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"name":"#.utf8)
        appendString(name, to: &out)
        out.append(contentsOf: #","shape":["#.utf8)
        for (i, d) in t.shape.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: String(d).utf8)
        }
        out.append(contentsOf: #"],"datatype":""#.utf8)
        out.append(contentsOf: t.dtype.inferenceProtocolName.utf8)
        out.append(UInt8(ascii: "\""))
        switch encoding {
        case .json: break
        case .base64:
            out.append(contentsOf: #","parameters":{"data_encoding":"base64"},"data":""#.utf8)
            t.withUnsafeBytes { Base64.encode($0, into: &out) }
            out.append(contentsOf: "\"}".utf8)
            return
        case .binary:
            out.append(contentsOf: #","parameters":{"binary_data_size":"#.utf8)
            out.append(contentsOf: String(binarySize(t)).utf8)
            out.append(contentsOf: "}}".utf8)
            return
        }
        out.append(contentsOf: #","data":"#.utf8)
        encodeData(t, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Appends the `data` array of `t`: `[v,v,...]`, flat, row-major, each value as described
    /// above.
    public static func encodeData(_ t: Tensor, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        switch t.dtype {
        case .float32: t.withUnsafeBufferPointer(as: Float.self) { NumberWriter.append($0, to: &out, NumberWriter.write) }
        case .float64: t.withUnsafeBufferPointer(as: Double.self) { NumberWriter.append($0, to: &out, NumberWriter.write) }
        case .float16:
            t.withUnsafeBytes { raw in
                appendFloats(raw.bindMemory(to: UInt16.self).lazy.map { Float16(bitPattern: $0) }, to: &out)
            }
        case .bfloat16: t.withUnsafeBufferPointer(as: BFloat16.self) { b in appendFloats(b.lazy.map { Float($0.doubleValue) }, to: &out) }
        case .bool:
            t.withUnsafeBytes { b in
                for (i, v) in b.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    out.append(contentsOf: (v != 0 ? "true" : "false").utf8)
                }
            }
        case .int8: t.withUnsafeBufferPointer(as: Int8.self) { appendIntegers($0, to: &out) }
        case .int16: t.withUnsafeBufferPointer(as: Int16.self) { appendIntegers($0, to: &out) }
        case .int32: t.withUnsafeBufferPointer(as: Int32.self) { appendIntegers($0, to: &out) }
        case .int64: t.withUnsafeBufferPointer(as: Int64.self) { appendIntegers($0, to: &out) }
        case .uint8: t.withUnsafeBufferPointer(as: UInt8.self) { appendIntegers($0, to: &out) }
        case .uint16: t.withUnsafeBufferPointer(as: UInt16.self) { appendIntegers($0, to: &out) }
        case .uint32: t.withUnsafeBufferPointer(as: UInt32.self) { appendIntegers($0, to: &out) }
        case .uint64: t.withUnsafeBufferPointer(as: UInt64.self) { appendIntegers($0, to: &out) }
        case .int4, .int2: t.withUnsafeBufferPointer(as: Int8.self) { appendIntegers($0, to: &out) }
        case .uint4, .uint2: t.withUnsafeBufferPointer(as: UInt8.self) { appendIntegers($0, to: &out) }
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            let values = t.doubles().map { Float($0) }
            values.withUnsafeBufferPointer { appendFloats($0, to: &out) }
        case .string:
            for (i, s) in t.strings.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(s, to: &out)
            }
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Reads a `data` value (flat or nested JSON array, or a bare scalar; see `TensorDataDecoder`)
    /// into a tensor of `dtype` and `shape`. The byte after `json` in memory must be readable and
    /// not a digit.
    public static func decodeData(_ json: UnsafeRawBufferPointer, dtype: DType, shape: [Int]) throws(ServeError) -> Tensor {
        guard let count = ShapeMath.elementCount(shape) else { throw .badRequest("shape \(shape) overflows") }
        return try TensorDataDecoder.decode(
            line: json, range: 0..<json.count, dtype: dtype, shape: shape, count: count, base64: false, label: "data")
    }

    /// The same as `encode(name:tensor:encoding:into:)`, as a `JSON` value.
    package static func encode(name: String, tensor: Tensor, encoding: OutputEncoding = .json) -> JSON {
        var out: [UInt8] = []
        encode(name: name, tensor: tensor, encoding: encoding, into: &out)
        // The bytes are valid JSON by construction; parsing them back keeps one writer.
        return out.withUnsafeBytes { (try? JSONParser.parse($0)) ?? .null }
    }

    /// The size of `t` in the binary tensor data extension: its little-endian element bytes
    /// (`BOOL` one byte each), or for `BYTES` each element as a 4-byte little-endian length and
    /// its UTF-8 bytes.
    public static func binarySize(_ t: Tensor) -> Int {
        guard t.dtype == .string else { return t.byteCount }
        return t.strings.reduce(0) { $0 + 4 + $1.utf8.count }
    }

    /// Appends the binary tensor data of `t` (see `binarySize`) to `out`.
    public static func appendBinary(_ t: Tensor, to out: inout [UInt8]) {
        guard t.dtype == .string else {
            t.withUnsafeBytes { out.append(contentsOf: $0) }
            return
        }
        for s in t.strings {
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: s.utf8.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: s.utf8)
        }
    }

    static func appendFloats<S: Sequence>(_ values: S, to out: inout [UInt8])
    where S.Element: BinaryFloatingPoint & LosslessStringConvertible {
        var first = true
        for v in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            if v.isFinite {
                out.append(contentsOf: v.description.utf8)
            } else if v.isNaN {
                out.append(contentsOf: #""NaN""#.utf8)
            } else {
                out.append(contentsOf: (v > 0 ? #""Infinity""# : #""-Infinity""#).utf8)
            }
        }
    }

    static func appendIntegers<T: FixedWidthInteger>(_ values: UnsafeBufferPointer<T>, to out: inout [UInt8]) {
        NumberWriter.append(values, to: &out) { v, p in NumberWriter.write(v, p) }
    }

    /// Appends `s` as a JSON string.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        var text = ""
        JSON.string(s).write(into: &text)
        out.append(contentsOf: text.utf8)
    }
}

/// How an output tensor is written in an answer: JSON numbers, a base64 string, or raw bytes
/// after the JSON (the binary tensor data extension).
public enum OutputEncoding: Sendable, Equatable {
    case json, base64, binary
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
