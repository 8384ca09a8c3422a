#if canImport(Glibc)
import Glibc
#endif
import CProtos
import DLGraph
import DLTensor

extension ReadContext {
    /// Decodes a TensorProto: raw_data, external data, or the typed field ONNX assigns the type.
    mutating func tensor(_ t: UnsafeMutablePointer<Onnx__TensorProto>) throws(ONNXError) -> Tensor {
        let p = t.pointee
        let name = cString(p.name)
        let code = p.has_data_type != 0 ? p.data_type : 0
        guard let dtype = DType(onnxCode: code) else { throw .unsupportedDataType(path: path, tensor: name, code: code) }
        var shape: [Int] = []
        for i in 0..<p.n_dims {
            let d = p.dims[i]
            guard d >= 0, d <= Int64(Int.max) else {
                throw .invalidTensor(path: path, tensor: name, reason: "dimension \(i) is \(d)")
            }
            shape.append(Int(d))
        }
        guard let count = ShapeMath.elementCount(shape), count.multipliedReportingOverflow(by: max(dtype.byteWidth, 1)).overflow == false else {
            throw .invalidTensor(path: path, tensor: name, reason: "shape \(shape) has more elements than memory can hold")
        }
        if p.segment != nil {
            throw .invalidTensor(path: path, tensor: name, reason: "segmented tensors are not supported")
        }
        if p.has_data_location != 0 && p.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            return try external(t, name: name, dtype: dtype, shape: shape)
        }
        if dtype == .string {
            guard p.n_string_data == count else {
                throw .invalidTensor(path: path, tensor: name, reason: "shape \(shape) needs \(count) strings, found \(p.n_string_data)")
            }
            return Tensor(shape: shape, strings: (0..<count).map { binaryString(p.string_data[$0]) })
        }
        if dtype.bitWidth < 8 {
            return try unpackSubByte(p, name: name, dtype: dtype, shape: shape, count: count)
        }
        let need = count * dtype.byteWidth
        if p.has_raw_data != 0 {
            guard p.raw_data.len == need else {
                throw .invalidTensor(path: path, tensor: name, reason: "raw_data holds \(p.raw_data.len) bytes, shape \(shape) of \(dtype) needs \(need)")
            }
            do {
                return try Tensor(dtype: dtype, shape: shape, bytes: UnsafeRawBufferPointer(start: p.raw_data.data, count: need))
            } catch { throw .invalidTensor(path: path, tensor: name, reason: "\(error)") }
        }
        // Typed fields.
        func check(_ n: Int, _ field: String) throws(ONNXError) {
            guard n == count else {
                throw .invalidTensor(path: path, tensor: name, reason: "shape \(shape) needs \(count) values, \(field) holds \(n)")
            }
        }
        // The value count is checked against the shape before anything is allocated, so a
        // tiny file cannot declare a huge shape and have it zero-filled.
        switch dtype {
        case .float32: try check(p.n_float_data, "float_data")
        case .float64: try check(p.n_double_data, "double_data")
        case .int64: try check(p.n_int64_data, "int64_data")
        case .uint32, .uint64: try check(p.n_uint64_data, "uint64_data")
        case .string: break
        default: try check(p.n_int32_data, "int32_data")
        }
        var out = Tensor(zeros: dtype, shape: shape)
        switch dtype {
        case .float32:
            try check(p.n_float_data, "float_data")
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: p.float_data, count: need)) }
        case .float64:
            try check(p.n_double_data, "double_data")
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: p.double_data, count: need)) }
        case .int64:
            try check(p.n_int64_data, "int64_data")
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: p.int64_data, count: need)) }
        case .uint32, .uint64:
            try check(p.n_uint64_data, "uint64_data")
            out.withUnsafeMutableBytes { dst in
                for i in 0..<count {
                    let v = p.uint64_data[i]
                    if dtype == .uint64 { dst.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) }
                    else { dst.storeBytes(of: UInt32(truncatingIfNeeded: v), toByteOffset: i * 4, as: UInt32.self) }
                }
            }
        case .int32, .int16, .int8, .uint16, .uint8, .bool, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz,
             .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2:
            // int32_data carries the narrow types, one value (or bit pattern) per entry.
            try check(p.n_int32_data, "int32_data")
            let width = dtype.byteWidth
            out.withUnsafeMutableBytes { dst in
                for i in 0..<count {
                    let v = p.int32_data[i]
                    switch width {
                    case 4: dst.storeBytes(of: v, toByteOffset: i * 4, as: Int32.self)
                    case 2: dst.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: i * 2, as: UInt16.self)
                    default: dst.storeBytes(of: UInt8(truncatingIfNeeded: dtype == .bool ? (v != 0 ? 1 : 0) : v), toByteOffset: i, as: UInt8.self)
                    }
                }
            }
        case .string: break
        }
        return out
    }

    /// A 4- or 2-bit tensor: packed low bits first in `raw_data`, or one packed byte per
    /// `int32_data` entry; unpacked to a byte per element (signed types sign-extended).
    func unpackSubByte(_ p: Onnx__TensorProto, name: String, dtype: DType, shape: [Int], count: Int) throws(ONNXError) -> Tensor {
        let need = dtype.packedByteCount(count)
        // Checked before allocating: the packed bytes present must be what the shape needs.
        if p.has_raw_data != 0 ? p.raw_data.len != need : p.n_int32_data != need {
            throw .invalidTensor(path: path, tensor: name, reason: p.has_raw_data != 0
                ? "raw_data holds \(p.raw_data.len) bytes, \(count) elements of \(dtype) pack into \(need)"
                : "int32_data holds \(p.n_int32_data) packed bytes, \(count) elements of \(dtype) need \(need)")
        }
        var packed = [UInt8](repeating: 0, count: need)
        if p.has_raw_data != 0 {
            guard p.raw_data.len == need else {
                throw .invalidTensor(path: path, tensor: name, reason: "raw_data holds \(p.raw_data.len) bytes, \(count) elements of \(dtype) pack into \(need)")
            }
            for i in 0..<need { packed[i] = p.raw_data.data[i] }
        } else {
            guard p.n_int32_data == need else {
                throw .invalidTensor(path: path, tensor: name, reason: "int32_data holds \(p.n_int32_data) packed bytes, \(count) elements of \(dtype) need \(need)")
            }
            for i in 0..<need { packed[i] = UInt8(truncatingIfNeeded: p.int32_data[i]) }
        }
        let bits = dtype.bitWidth, perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        let signed = dtype == .int4 || dtype == .int2
        var out = Tensor(zeros: dtype, shape: shape)
        out.withUnsafeMutableBytes { dst in
            for i in 0..<count {
                var v = (packed[i / perByte] >> UInt8((i % perByte) * bits)) & mask
                if signed && v & (1 << (bits - 1)) != 0 { v |= ~mask }
                dst[i] = v
            }
        }
        return out
    }

    /// A tensor whose bytes live in a file beside the model: `location` (relative, inside the
    /// model's folder), `offset` and `length`. The bytes are memory-mapped, not copied.
    mutating func external(_ t: UnsafeMutablePointer<Onnx__TensorProto>, name: String, dtype: DType, shape: [Int])
        throws(ONNXError) -> Tensor
    {
        var location = "", offset = 0, length: Int? = nil
        for e in messages(t.pointee.external_data, t.pointee.n_external_data) {
            let key = cString(e.pointee.key), value = cString(e.pointee.value)
            switch key {
            case "location": location = value
            case "offset":
                guard let v = Int(value), v >= 0 else { throw .invalidExternalData(path: path, tensor: name, reason: "offset '\(value)' is not a non-negative integer") }
                offset = v
            case "length":
                guard let v = Int(value), v >= 0 else { throw .invalidExternalData(path: path, tensor: name, reason: "length '\(value)' is not a non-negative integer") }
                length = v
            default: break
            }
        }
        guard !location.isEmpty else { throw .invalidExternalData(path: path, tensor: name, reason: "has no location") }
        guard dtype.bitWidth >= 8 else {
            throw .invalidExternalData(path: path, tensor: name, reason: "packed \(dtype) tensors in external data are not supported yet")
        }
        guard !location.hasPrefix("/"), !location.hasPrefix("\\"), !hasDrivePrefix(location),
              !location.split(whereSeparator: { $0 == "/" || $0 == "\\" }).contains("..") else {
            throw .invalidExternalData(path: path, tensor: name, reason: "location '\(location)' leaves the model's folder")
        }
        let full = directory + "/" + location
        // Resolve symlinks: the real file must still be inside the model's real folder.
        guard let realDir = realPath(directory), let realFile = realPath(full) else {
            throw .invalidExternalData(path: path, tensor: name, reason: "file '\(location)' cannot be opened")
        }
        guard realFile.hasPrefix(realDir.hasSuffix("/") ? realDir : realDir + "/") else {
            throw .invalidExternalData(path: path, tensor: name, reason: "location '\(location)' resolves outside the model's folder")
        }
        let file: MappedFile
        if let f = externalFiles[realFile] { file = f } else {
            do { file = try MappedFile(path: realFile) } catch {
                throw .invalidExternalData(path: path, tensor: name, reason: "file '\(location)': \(error)")
            }
            externalFiles[realFile] = file
        }
        let need = (ShapeMath.elementCount(shape) ?? 0) * dtype.byteWidth
        guard offset <= file.byteCount else {
            throw .invalidExternalData(path: path, tensor: name, reason: "offset \(offset) is past the end of '\(location)', which has \(file.byteCount) bytes")
        }
        let len = length ?? (file.byteCount - offset)
        guard len <= file.byteCount - offset else {
            throw .invalidExternalData(path: path, tensor: name, reason: "length \(len) at offset \(offset) runs past the end of '\(location)', which has \(file.byteCount) bytes")
        }
        guard len == need else {
            throw .invalidExternalData(path: path, tensor: name, reason: "length \(len) differs from the \(need) bytes shape \(shape) of \(dtype) needs")
        }
        do {
            if offset % max(dtype.byteWidth, 1) == 0 {
                return try Tensor(dtype: dtype, shape: shape, viewing: file, offset: offset)
            }
            // Unaligned for its type: copy, so typed access stays aligned.
            return try Tensor(dtype: dtype, shape: shape, bytes: UnsafeRawBufferPointer(rebasing: file.bytes[offset..<offset + need]))
        } catch { throw .invalidExternalData(path: path, tensor: name, reason: "\(error)") }
    }

}

extension ONNXReader {
    /// Rewrites op forms of older opsets into the IR's form, or refuses those it cannot.
    static func normaliseLegacyForms(_ graph: inout Graph, path: String) throws(ONNXError) {
        let opset = graph.metadata.onnxOpset ?? 1
        if opset < 13 {
            // Softmax, LogSoftmax and Hardmax before 13 flattened the input from `axis` on.
            SoftmaxImport.rewriteLegacy(&graph)
        }
        SignalImport.normalise(&graph, opset: opset)
        // Attributes that later opsets take as inputs (Clip, Pad, Slice, TopK, Split, Squeeze, ...).
        NormalForm.normalise(&graph)
        if opset < 7, let n = graph.nodes.first(where: { $0.attribute("broadcast") != nil && $0.attribute("axis") != nil }) {
            // Before 7, binary ops broadcast only when told, aligning B at `axis`; numpy-style
            // broadcasting covers the form without `axis` (B aligned with the trailing dims).
            throw .unsupportedOpset(path: path, domain: "", version: opset, reason: "node \(n.displayName) uses the pre-7 broadcast form with an axis attribute")
        }
        if opset < 5, let n = graph.nodes.first(where: { $0.opType == "Reshape" }) {
            throw .unsupportedOpset(path: path, domain: "", version: opset, reason: "node \(n.displayName) uses the pre-5 Reshape form with a shape attribute")
        }
    }
}

/// True for a Windows absolute path such as `C:\\weights.bin` or `C:/weights.bin`.
func hasDrivePrefix(_ s: String) -> Bool {
    let u = Array(s.utf8.prefix(2))
    return u.count == 2 && u[1] == UInt8(ascii: ":") && ((u[0] | 0x20) >= UInt8(ascii: "a") && (u[0] | 0x20) <= UInt8(ascii: "z"))
}

func realPath(_ p: String) -> String? {
    guard let r = realpath(p, nil) else { return nil }
    defer { free(r) }
    return String(cString: r)
}
