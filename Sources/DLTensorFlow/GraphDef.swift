import CTensorFlowProtos
import DLTensor

/// A node attribute, copied out of protobuf-c.
enum TFAttr {
    case s(String), i(Int), f(Float), b(Bool), type(Tensorflow__DataType), shape([Int]?), tensor(TFTensor), fn(String)
    case list(ints: [Int], floats: [Float], types: [Tensorflow__DataType], strings: [String])
    case placeholder(String)
}

/// A `TensorProto` kept as TensorFlow stored it, decoded into a `Tensor` when an op needs it.
struct TFTensor {
    var dtype: Tensorflow__DataType
    var shape: [Int]?
    var decoded: Result<Tensor, TensorDecodeError>
}

struct TensorDecodeError: Error { let reason: String }

/// One `NodeDef` of a graph or function body.
struct TFNode {
    var name: String
    var op: String
    /// Data inputs ("node", "node:1", function bodies "node:out:0", arguments "x"); control
    /// inputs (`^node`) are left out.
    var inputs: [String]
    var attrs: [String: TFAttr]

    func int(_ k: String) -> Int? { if case .i(let v)? = attrs[k] { return v }; return nil }
    func float(_ k: String) -> Float? { if case .f(let v)? = attrs[k] { return v }; return nil }
    func bool(_ k: String) -> Bool? { if case .b(let v)? = attrs[k] { return v }; return nil }
    func string(_ k: String) -> String? { if case .s(let v)? = attrs[k] { return v }; return nil }
    func type(_ k: String) -> Tensorflow__DataType? { if case .type(let v)? = attrs[k] { return v }; return nil }
    func ints(_ k: String) -> [Int]? { if case .list(let v, _, _, _)? = attrs[k] { return v }; return nil }
    func fn(_ k: String) -> String? { if case .fn(let v)? = attrs[k] { return v }; return nil }
}

/// One function of the library: its argument names, result names and body.
struct TFFunction {
    var name: String
    var inputArgs: [String]
    var outputArgs: [String]
    var nodes: [TFNode]
    /// Result name -> reference in the body.
    var ret: [String: String]
}

enum ProtoCopy {
    static func nodes(_ p: UnsafeMutablePointer<UnsafeMutablePointer<Tensorflow__NodeDef>?>?, _ n: Int) -> [TFNode] {
        PB.messages(p, n).map { node($0.pointee) }
    }

    static func node(_ n: Tensorflow__NodeDef) -> TFNode {
        var attrs: [String: TFAttr] = [:]
        for e in PB.messages(n.attr, n.n_attr) {
            if let v = e.pointee.value { attrs[PB.string(e.pointee.key)] = attr(v.pointee) }
        }
        let inputs = PB.strings(n.input, n.n_input).filter { !$0.hasPrefix("^") }
        return TFNode(name: PB.string(n.name), op: PB.string(n.op), inputs: inputs, attrs: attrs)
    }

    static func attr(_ a: Tensorflow__AttrValue) -> TFAttr {
        switch a.value_case {
        case TENSORFLOW__ATTR_VALUE__VALUE_S: return .s(String(decoding: PB.bytes(a.s), as: UTF8.self))
        case TENSORFLOW__ATTR_VALUE__VALUE_I: return .i(Int(a.i))
        case TENSORFLOW__ATTR_VALUE__VALUE_F: return .f(a.f)
        case TENSORFLOW__ATTR_VALUE__VALUE_B: return .b(a.b != 0)
        case TENSORFLOW__ATTR_VALUE__VALUE_TYPE: return .type(a.type)
        case TENSORFLOW__ATTR_VALUE__VALUE_SHAPE: return .shape(PB.dims(a.shape))
        case TENSORFLOW__ATTR_VALUE__VALUE_TENSOR: return a.tensor.map { .tensor(tensor($0.pointee)) } ?? .list(ints: [], floats: [], types: [], strings: [])
        case TENSORFLOW__ATTR_VALUE__VALUE_FUNC: return .fn(PB.string(a.func?.pointee.name))
        case TENSORFLOW__ATTR_VALUE__VALUE_PLACEHOLDER: return .placeholder(PB.string(a.placeholder))
        case TENSORFLOW__ATTR_VALUE__VALUE_LIST:
            guard let l = a.list?.pointee else { break }
            let bytes: [ProtobufCBinaryData] = PB.scalars(l.s, l.n_s)
            return .list(ints: PB.scalars(l.i, l.n_i).map { Int($0) }, floats: PB.scalars(l.f, l.n_f),
                         types: PB.scalars(l.type, l.n_type), strings: bytes.map { String(decoding: PB.bytes($0), as: UTF8.self) })
        default: break
        }
        return .list(ints: [], floats: [], types: [], strings: [])
    }

    static func function(_ f: Tensorflow__FunctionDef) -> TFFunction {
        let sig = f.signature?.pointee
        var ret: [String: String] = [:]
        for e in PB.messages(f.ret, f.n_ret) { ret[PB.string(e.pointee.key)] = PB.string(e.pointee.value) }
        return TFFunction(name: PB.string(sig?.name),
                          inputArgs: sig.map { s in PB.messages(s.input_arg, s.n_input_arg).map { PB.string($0.pointee.name) } } ?? [],
                          outputArgs: sig.map { s in PB.messages(s.output_arg, s.n_output_arg).map { PB.string($0.pointee.name) } } ?? [],
                          nodes: nodes(f.node_def, f.n_node_def), ret: ret)
    }

    /// Decodes a `TensorProto`.
    static func tensor(_ t: Tensorflow__TensorProto) -> TFTensor {
        let strings: [ProtobufCBinaryData] = PB.scalars(t.string_val, t.n_string_val)
        let values = TensorValues(
            content: Array(PB.bytes(t.tensor_content)), floats: PB.scalars(t.float_val, t.n_float_val),
            doubles: PB.scalars(t.double_val, t.n_double_val), ints: PB.scalars(t.int_val, t.n_int_val),
            int64s: PB.scalars(t.int64_val, t.n_int64_val), uint32s: PB.scalars(t.uint32_val, t.n_uint32_val),
            uint64s: PB.scalars(t.uint64_val, t.n_uint64_val), bools: PB.scalars(t.bool_val, t.n_bool_val).map { $0 != 0 },
            halves: PB.scalars(t.half_val, t.n_half_val), strings: strings.map { String(decoding: PB.bytes($0), as: UTF8.self) })
        return values.tensor(dtype: t.dtype, shape: PB.dims(t.tensor_shape))
    }
}

/// The value fields of a `TensorProto` (from protobuf-c or from TF.js's JSON form).
struct TensorValues {
    var content: [UInt8] = []
    var floats: [Float] = [], doubles: [Double] = [], ints: [Int32] = [], int64s: [Int64] = []
    var uint32s: [UInt32] = [], uint64s: [UInt64] = [], bools: [Bool] = [], halves: [Int32] = [], strings: [String] = []

    /// `tensor_content` (little-endian bytes) or the typed value fields, where fewer values than
    /// elements repeat the last one (TensorFlow's splat form).
    func tensor(dtype code: Tensorflow__DataType, shape: [Int]?) -> TFTensor {
        func fail(_ r: String) -> TFTensor { TFTensor(dtype: code, shape: shape, decoded: .failure(TensorDecodeError(reason: r))) }
        guard let shape, !shape.contains(where: { $0 < 0 }) else { return fail("has an unknown or negative shape") }
        guard let dtype = TFDataType.dtype(code) else { return fail("has \(TFDataType.name(code)), which DLKit does not hold") }
        var count = 1
        for d in shape {
            let (m, o) = count.multipliedReportingOverflow(by: d)
            guard !o, m <= 1 << 31 else { return fail("shape \(shape) is too large") }
            count = m
        }
        func make(_ r: Result<Tensor, TensorDecodeError>) -> TFTensor { TFTensor(dtype: code, shape: shape, decoded: r) }
        if dtype == .string {
            var all = strings
            if all.count < count, let last = all.last { all += Array(repeating: last, count: count - all.count) }
            guard all.count == count else { return fail("holds \(all.count) strings for \(count) elements") }
            return make(.success(Tensor(shape: shape, strings: all)))
        }
        if !content.isEmpty || count == 0 {
            return content.withUnsafeBytes { b in
                do { return make(.success(try Tensor(dtype: dtype, shape: shape, bytes: b))) } catch { return fail("\(error)") }
            }
        }
        func splat<T: TensorScalar>(_ v: [T]) -> TFTensor {
            guard let last = v.last else { return make(.success(Tensor(zeros: dtype, shape: shape))) }
            guard v.count <= count else { return fail("holds \(v.count) values for \(count) elements") }
            return make(.success(Tensor(shape: shape, scalars: v + Array(repeating: last, count: count - v.count))))
        }
        switch dtype {
        case .float32: return splat(floats)
        case .float64: return splat(doubles)
        case .int64: return splat(int64s)
        case .int32: return splat(ints)
        case .int16: return splat(ints.map { Int16(truncatingIfNeeded: $0) })
        case .int8: return splat(ints.map { Int8(truncatingIfNeeded: $0) })
        case .uint8: return splat(ints.map { UInt8(truncatingIfNeeded: $0) })
        case .uint16: return splat(ints.map { UInt16(truncatingIfNeeded: $0) })
        case .uint32: return splat(uint32s)
        case .uint64: return splat(uint64s)
        case .bool: return splat(bools)
        case .float16, .bfloat16:
            // half_val holds the 16-bit patterns in int32s.
            let bits = halves.map { UInt16(truncatingIfNeeded: $0) }
            guard let last = bits.last, bits.count <= count else {
                return bits.isEmpty ? make(.success(Tensor(zeros: dtype, shape: shape))) : fail("holds \(bits.count) values for \(count) elements")
            }
            let all = bits + Array(repeating: last, count: count - bits.count)
            return all.withUnsafeBytes { b in
                do { return make(.success(try Tensor(dtype: dtype, shape: shape, bytes: b))) } catch { return fail("\(error)") }
            }
        default: return fail("has \(dtype) values in typed fields, which DLKit does not read")
        }
    }
}
