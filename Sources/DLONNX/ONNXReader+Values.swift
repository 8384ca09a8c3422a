import CProtos
import DLGraph
import DLTensor

extension ONNXReader {
    /// Reads one serialized value of the ONNX test data format: a `TensorProto` for a tensor, a
    /// `SequenceProto` for a sequence, an `OptionalProto` for an optional (onnx-data.proto).
    /// `kind` is the declared type of the value the file feeds.
    public static func readValue(path: String, kind: ValueKind) throws(ONNXError) -> GraphValue {
        if case .tensor = kind { return .tensor(try readTensor(path: path)) }
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError {
            throw .cannotRead(path: path, reason: e.reason)
        } catch { throw .cannotRead(path: path, reason: "\(error)") }
        guard file.byteCount <= maxModelBytes else { throw .tooLarge(path: path, bytes: file.byteCount) }
        let bytes = file.base.map { UnsafeRawBufferPointer(start: $0, count: file.byteCount) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var ctx = ReadContext(path: path, directory: dir)
        return try ctx.containerValue(bytes, optional: { if case .optional = kind { return true } else { return false } }(), depth: 0)
    }
}

/// The fields of SequenceProto / OptionalProto (onnx-data.proto), which the generated C code
/// does not cover: 2 elem_type, 3 tensor(s), 5 sequence, 7 optional. Maps and sparse tensors
/// are refused.
extension ReadContext {
    mutating func containerValue(_ bytes: UnsafeRawBufferPointer, optional: Bool, depth: Int) throws(ONNXError) -> GraphValue {
        guard depth < 16 else { throw .notONNX(path: path, reason: "values nested more than 16 deep") }
        var elemType: UInt64 = 0
        var items: [GraphValue] = []
        var wire = WireReader(bytes: bytes)
        while !wire.atEnd {
            guard let (field, type) = wire.key() else { throw .notONNX(path: path, reason: "bad protobuf key at byte \(wire.offset)") }
            switch (field, type) {
            case (2, 0):
                guard let v = wire.varint() else { throw .notONNX(path: path, reason: "bad varint at byte \(wire.offset)") }
                elemType = v
            case (3, 2), (5, 2), (7, 2):
                guard let sub = wire.lengthDelimited() else { throw .notONNX(path: path, reason: "truncated field \(field) at byte \(wire.offset)") }
                if field == 3 {
                    let unpacked = sub.baseAddress.flatMap {
                        onnx__tensor_proto__unpack(nil, sub.count, $0.assumingMemoryBound(to: UInt8.self))
                    } ?? [UInt8(0)].withUnsafeBufferPointer { z in z.baseAddress.flatMap { onnx__tensor_proto__unpack(nil, 0, $0) } }
                    guard let t = unpacked else { throw .notONNX(path: path, reason: "an element is not a valid TensorProto") }
                    defer { onnx__tensor_proto__free_unpacked(t, nil) }
                    items.append(.tensor(try tensor(t)))
                } else {
                    items.append(try containerValue(sub, optional: field == 7, depth: depth + 1))
                }
            case (4, _), (6, _):
                throw .unsupportedType(path: path, value: "", kind: field == 4 ? "sparse tensor" : "map")
            default:
                guard wire.skip(type) else { throw .notONNX(path: path, reason: "bad protobuf field \(field) at byte \(wire.offset)") }
            }
        }
        if optional {
            // elem_type 0 (undefined) is the empty optional.
            guard elemType != 0, let v = items.last else { return .optional(nil) }
            return .optional(v)
        }
        return .sequence(items)
    }
}

/// Minimal protobuf wire-format walker (keys, varints, length-delimited fields).
struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    var atEnd: Bool { offset >= bytes.count }

    mutating func varint() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let b = bytes[offset]
            offset += 1
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
        return nil
    }

    mutating func key() -> (Int, Int)? {
        guard let k = varint(), k >> 3 <= UInt64(Int32.max) else { return nil }
        return (Int(k >> 3), Int(k & 7))
    }

    mutating func lengthDelimited() -> UnsafeRawBufferPointer? {
        guard let n = varint(), n <= UInt64(bytes.count - offset) else { return nil }
        let sub = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(n))])
        offset += Int(n)
        return sub
    }

    mutating func skip(_ type: Int) -> Bool {
        switch type {
        case 0: return varint() != nil
        case 1: guard bytes.count - offset >= 8 else { return false }; offset += 8; return true
        case 2: return lengthDelimited() != nil
        case 5: guard bytes.count - offset >= 4 else { return false }; offset += 4; return true
        default: return false
        }
    }
}
