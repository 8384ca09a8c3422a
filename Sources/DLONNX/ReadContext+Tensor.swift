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
        case .int32, .int16, .int8, .uint16, .uint8, .bool, .float16, .bfloat16:
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
            // Softmax before 13 flattened the input from `axis` (default 1) on; it equals the IR
            // Softmax only when that axis is the last one.
            var types: [String: TensorType]? = nil
            for i in graph.nodes.indices where graph.nodes[i].opType == "Softmax" {
                if types == nil { types = (try? graph.inferTypes()) ?? [:] }
                let node = graph.nodes[i]
                let axis = (try? node.int("axis", default: 1)) ?? 1
                guard let rank = types?[node.inputs.first ?? ""]?.rank, DimMath.axis(axis, rank: rank) == rank - 1 else {
                    throw .unsupportedOpset(path: path, domain: "", version: opset,
                                            reason: "node \(node.displayName) uses the pre-13 Softmax form that flattens from axis \(axis); only the last axis is supported")
                }
                graph.nodes[i].attributes.removeAll { $0.name == "axis" }
                graph.nodes[i].attributes.append(Attribute(name: "axis", value: .int(rank - 1)))
            }
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
