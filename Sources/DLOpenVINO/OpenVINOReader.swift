import DLGraph
import DLTensor
import Foundation

/// Reads OpenVINO IR (`model.xml` + `model.bin` beside it, IR v10 and v11) into a `Graph`.
///
/// ```swift
/// let graph = try OpenVINOReader.read(path: "model.xml")   // reads model.bin too
/// ```
/// Layers become IR (ONNX) ops; weights are views into the memory-mapped `.bin` where aligned.
/// An f16 Const followed by Convert (what `save_model` writes by default) stays an f16
/// initializer and a Cast node, so the f16 weights are kept bit for bit.
public enum OpenVINOReader {
    /// The ai.onnx opset the translated graph is written for (Gelu 20, Resize/Split 18+ forms).
    public static let onnxOpset = 21

    /// The `.bin` that goes with `xmlPath`: the same name with the extension replaced.
    public static func binPath(forXML xmlPath: String) -> String {
        let url = URL(fileURLWithPath: xmlPath)
        return url.deletingPathExtension().appendingPathExtension("bin").path
    }

    /// Reads `path` (the `.xml`) and the `.bin` beside it.
    /// - Parameter checkOps: when true, layer types without translation are refused, all at once.
    /// - Throws: `OpenVINOError` naming the file and the layer at fault.
    public static func read(path: String, checkOps: Bool = true) throws(OpenVINOError) -> Graph {
        let xml: MappedFile
        do { xml = try MappedFile(path: path) } catch { throw .cannotRead(path: path, reason: "\(error)") }
        let doc = try IRDocument(xml: xml.bytes, path: path)
        let bp = binPath(forXML: path)
        var bin: MappedFile?
        if FileManager.default.fileExists(atPath: bp) {
            do { bin = try MappedFile(path: bp) } catch { throw .cannotRead(path: bp, reason: "\(error)") }
        }
        return try read(document: doc, bin: bin, path: path, binPath: bp, checkOps: checkOps)
    }

    /// Translates a parsed document; `bin` holds the constants (nil when the model has none).
    public static func read(document doc: IRDocument, bin: MappedFile?, path: String, binPath: String,
                            checkOps: Bool = true) throws(OpenVINOError) -> Graph {
        var importer = try IRImporter(doc: doc, bin: bin, path: path, binPath: binPath)
        if checkOps {
            var unsupported: [String: Int] = [:]
            for l in doc.layers where !IRImporter.supported.contains(l.type) { unsupported[l.type, default: 0] += 1 }
            if !unsupported.isEmpty { throw .unsupportedOps(path: path, ops: unsupported) }
        }
        return try importer.build()
    }

    /// The layer types this reader translates.
    public static var supportedOps: Set<String> { IRImporter.supported }
}

/// Element types of IR (`element_type` attributes and port `precision`s).
enum IRElement {
    static func dtype(_ s: String) -> DType? {
        switch s.lowercased() {
        case "f32", "fp32": .float32
        case "f16", "fp16": .float16
        case "bf16": .bfloat16
        case "f64", "fp64": .float64
        case "i4": .int4
        case "u4": .uint4
        case "i8": .int8
        case "u8": .uint8
        case "i16": .int16
        case "u16": .uint16
        case "i32": .int32
        case "u32": .uint32
        case "i64": .int64
        case "u64": .uint64
        case "boolean", "bool": .bool
        case "f8e4m3": .float8e4m3fn
        case "f8e5m2": .float8e5m2
        default: nil
        }
    }

    static func name(_ t: DType) -> String? {
        switch t {
        case .float32: "f32"
        case .float16: "f16"
        case .bfloat16: "bf16"
        case .float64: "f64"
        case .int4: "i4"
        case .uint4: "u4"
        case .int8: "i8"
        case .uint8: "u8"
        case .int16: "i16"
        case .uint16: "u16"
        case .int32: "i32"
        case .uint32: "u32"
        case .int64: "i64"
        case .uint64: "u64"
        case .bool: "boolean"
        case .float8e4m3fn: "f8e4m3"
        case .float8e5m2: "f8e5m2"
        default: nil
        }
    }

    /// The port `precision` spelling of a type.
    static func precision(_ t: DType) -> String {
        switch t {
        case .float32: "FP32"
        case .float16: "FP16"
        case .float64: "FP64"
        case .bool: "BOOL"
        default: (name(t) ?? "undefined").uppercased()
        }
    }
}
