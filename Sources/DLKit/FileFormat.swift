import DLHuggingFace
import DLKeras
import DLOpenVINO
import DLSafeTensors
import DLTensor
import DLTensorFlow
import DLTorch
import Foundation

/// The kinds of file DLKit recognises, told apart by their first bytes (never by extension).
public enum FileFormat: String, Sendable, CaseIterable {
    case onnx
    case checkpoint = "ckpt"
    case safetensors
    case pytorchZip = "pytorch-zip"
    case pytorchLegacy = "pytorch-legacy"
    /// A `model.safetensors.index.json` naming the shards of a sharded safetensors model.
    case safetensorsIndex = "safetensors-index"
    case hdf5
    /// A Keras 3 `.keras` archive (a zip holding config.json and model.weights.h5).
    case keras
    /// OpenVINO IR: an XML file whose root is `<net>`, its weights in the `.bin` beside it.
    case openvino
    /// A TensorFlow SavedModel: a folder holding `saved_model.pb` (and `variables/`).
    case savedModel = "savedmodel"
    /// A TensorFlow checkpoint (tensor bundle), named by its `.index` file or its prefix.
    case tensorflowCheckpoint = "tf-checkpoint"
    /// A TensorFlow.js `model.json` (graph-model or layers-model) with its weight shards.
    case tfjs
    /// A TensorFlow Lite FlatBuffer (`TFL3` at bytes 4..<8).
    case tflite
    /// A Hugging Face model folder: a directory holding config.json (and weights, tokenizer.json).
    case huggingFace = "hf-folder"
    case unknown

    /// Whether files of this format hold a graph (a model), not only weights.
    public var hasGraph: Bool { [.onnx, .checkpoint, .hdf5, .keras, .savedModel, .tfjs, .tflite, .huggingFace, .openvino].contains(self) }

    /// Detects the format of the file or folder at `url` by its content.
    /// - Throws: `DLKitError.cannotRead` when the file cannot be opened.
    public static func detect(_ url: URL) throws(DLKitError) -> FileFormat { try detect(path: url.path) }

    /// ``detect(_:)`` by path, for the tools and the other targets of the package.
    package static func detect(path: String) throws(DLKitError) -> FileFormat {
        if HFFolder.isFolder(path) { return .huggingFace }
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if exists, isDirectory.boolValue {
            return FileManager.default.fileExists(atPath: path + "/saved_model.pb") ? .savedModel : .unknown
        }
        // A checkpoint prefix (`ckpt-1`) names no file itself.
        if !exists, FileManager.default.fileExists(atPath: path + ".index") {
            return try detect(path: path + ".index") == .tensorflowCheckpoint ? .tensorflowCheckpoint : .unknown
        }
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError { throw .cannotRead(path: path, reason: e.reason) } catch {
            throw .cannotRead(path: path, reason: "\(error)")
        }
        let b = file.bytes
        func starts(with prefix: [UInt8]) -> Bool {
            b.count >= prefix.count && zip(b, prefix).allSatisfy { $0 == $1 }
        }
        if TensorBundle.isIndex(b) { return .tensorflowCheckpoint }
        // TFLite: a FlatBuffer with the file identifier TFL3 after its 4-byte root offset.
        if b.count >= 8, b[4] == 0x54, b[5] == 0x46, b[6] == 0x4C, b[7] == 0x33 { return .tflite }
        if starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .hdf5 }
        if starts(with: [0x50, 0x4B, 0x03, 0x04]) { return KerasFile.isKerasArchive(file) ? .keras : .pytorchZip }
        if TorchFile.startsLegacy(b) { return .pytorchLegacy }
        // safetensors: u64 little-endian header length, then a JSON object.
        if b.count >= 10 {
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(b[i]) << (8 * UInt64(i)) }
            if n >= 2, n <= UInt64(b.count - 8), b[8] == UInt8(ascii: "{") {
                if let st = try? SafeTensorsFile(file: file), st.metadata["dlkit.ckpt_version"] != nil {
                    return .checkpoint
                }
                return .safetensors
            }
        }
        // A sharded safetensors index: a JSON object with a weight_map.
        if let first = b.firstIndex(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }), b[first] == UInt8(ascii: "{") {
            let head = String(decoding: UnsafeRawBufferPointer(rebasing: b[0..<min(b.count, 1 << 20)]), as: UTF8.self)
            if head.contains("\"weight_map\"") { return .safetensorsIndex }
            if TFJSModel.isModelJSON(b) { return .tfjs }
        }
        if IRDocument.looksLikeIR(b) { return .openvino }
        // ONNX: a protobuf ModelProto starts with a field tag; exporters write ir_version (field 1,
        // varint: 0x08) first, hand-built files may start with any ModelProto field.
        if let first = b.first, [0x08, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42].contains(first) { return .onnx }
        return .unknown
    }
}
