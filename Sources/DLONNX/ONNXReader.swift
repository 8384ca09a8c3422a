import CProtos
import DLGraph
import DLTensor

/// Reads ONNX models (`.onnx`, a serialized `ModelProto`) into the IR.
///
/// The bytes are decoded by protobuf-c; this type only translates the messages. Initializers in
/// `raw_data` and the typed fields become owned tensors; external data is memory-mapped.
/// Unsupported ops are all reported in one error.
public enum ONNXReader {
    /// The protobuf limit on one serialized message.
    public static let maxModelBytes = 2_147_483_647

    /// Reads the model at `path`.
    /// - Parameter checkOps: when true (the default), ops the IR does not know are listed in one
    ///   error; `inspect` turns this off to describe any model.
    public static func read(path: String, checkOps: Bool = true) throws(ONNXError) -> Graph {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError {
            throw .cannotRead(path: path, reason: e.reason)
        } catch { throw .cannotRead(path: path, reason: "\(error)") }
        guard file.byteCount <= maxModelBytes else { throw .tooLarge(path: path, bytes: file.byteCount) }
        guard file.byteCount > 0, let base = file.base else { throw .notONNX(path: path, reason: "the file is empty") }
        let dir = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        return try read(bytes: UnsafeRawBufferPointer(start: base, count: file.byteCount), path: path,
                        directory: dir, checkOps: checkOps)
    }

    /// Reads a model from serialized bytes. `path` names it in messages; `directory` is where
    /// external data files are looked up.
    public static func read(bytes: UnsafeRawBufferPointer, path: String, directory: String,
                            checkOps: Bool = true) throws(ONNXError) -> Graph {
        if let offset = ProtoNesting.tooDeep(bytes) {
            throw .notONNX(path: path, reason: "messages nest more than \(ProtoNesting.maxDepth) deep at byte \(offset)")
        }
        guard let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let model = onnx__model_proto__unpack(nil, bytes.count, p) else {
            throw .notONNX(path: path, reason: "the bytes are not a valid protobuf ModelProto; truncated or another format")
        }
        defer { onnx__model_proto__free_unpacked(model, nil) }
        var ctx = ReadContext(path: path, directory: directory)
        var meta = ModelMetadata()
        meta.irVersion = model.pointee.has_ir_version != 0 ? Int(model.pointee.ir_version) : 0
        meta.producerName = cString(model.pointee.producer_name)
        meta.producerVersion = cString(model.pointee.producer_version)
        meta.domain = cString(model.pointee.domain)
        meta.modelVersion = model.pointee.has_model_version != 0 ? Int(model.pointee.model_version) : 0
        meta.docString = cString(model.pointee.doc_string)
        for o in messages(model.pointee.opset_import, model.pointee.n_opset_import) {
            meta.opsetImports.append((cString(o.pointee.domain), o.pointee.has_version != 0 ? Int(o.pointee.version) : 0))
        }
        for e in messages(model.pointee.metadata_props, model.pointee.n_metadata_props) {
            meta.metadataProps.append((cString(e.pointee.key), cString(e.pointee.value)))
        }
        // An ai.onnx import is implied at version 1 when none is listed; ours must be at least 7.
        // A model that imports only other domains (ai.onnx.ml, training) has no ai.onnx version to check.
        ctx.opset = meta.onnxOpset ?? 1
        guard ctx.opset >= 1 else {
            throw .unsupportedOpset(path: path, domain: "", version: ctx.opset, reason: "ai.onnx opsets start at 1")
        }
        guard let g = model.pointee.graph else { throw .noGraph(path: path) }
        var graph = try ctx.graph(g)
        graph.metadata = meta
        if checkOps { try validate(&graph, path: path) }
        return graph
    }

    /// Checks that every op is in the IR, the graph is well formed, and rewrites older opset
    /// forms into the IR's. `read` does this unless told not to; callers that attach initializers
    /// afterwards (the checkpoint reader) call it themselves.
    public static func validate(_ graph: inout Graph, path: String) throws(ONNXError) {
        let unsupported = graph.unsupportedOps
        guard unsupported.isEmpty else { throw .graph(path: path, .unsupportedOps(unsupported)) }
        do { try graph.verifyAndSort() } catch { throw .graph(path: path, error) }
        try normaliseLegacyForms(&graph, path: path)
    }
}

/// Borrowed C strings to Swift (invalid UTF-8 repaired), "" for NULL.
func cString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

/// The non-NULL elements of a protobuf-c repeated message field.
func messages<T>(_ p: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ n: Int) -> [UnsafeMutablePointer<T>] {
    guard let p, n > 0 else { return [] }
    return (0..<n).compactMap { p[$0] }
}

func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
    guard let p, n > 0 else { return [] }
    return (0..<n).map { cString(p[$0]) }
}

func binaryString(_ b: ProtobufCBinaryData) -> String {
    guard let d = b.data, b.len > 0 else { return "" }
    return String(decoding: UnsafeBufferPointer(start: d, count: b.len), as: UTF8.self)
}

extension ONNXReader {
    /// Reads one serialized `TensorProto` (the `input_0.pb` files of the ONNX test suites).
    /// External data is looked up beside `path`.
    public static func readTensor(path: String) throws(ONNXError) -> Tensor {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError {
            throw .cannotRead(path: path, reason: e.reason)
        } catch { throw .cannotRead(path: path, reason: "\(error)") }
        guard file.byteCount <= maxModelBytes else { throw .tooLarge(path: path, bytes: file.byteCount) }
        // An empty file is a valid TensorProto with every field absent.
        let zero: [UInt8] = [0]
        let unpacked = zero.withUnsafeBufferPointer { z -> UnsafeMutablePointer<Onnx__TensorProto>? in
            let data = file.base?.assumingMemoryBound(to: UInt8.self) ?? z.baseAddress
            return data.flatMap { onnx__tensor_proto__unpack(nil, file.byteCount, $0) }
        }
        guard let t = unpacked else {
            throw .notONNX(path: path, reason: "the bytes are not a valid protobuf TensorProto")
        }
        defer { onnx__tensor_proto__free_unpacked(t, nil) }
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var ctx = ReadContext(path: path, directory: dir)
        return try ctx.tensor(t)
    }
}
