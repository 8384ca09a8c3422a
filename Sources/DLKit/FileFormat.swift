import DLSafeTensors
import DLTensor
import DLTorch

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
    case unknown

    /// Detects the format of the file at `path`.
    /// - Throws: `DLKitError.cannotRead` when the file cannot be opened.
    public static func detect(path: String) throws(DLKitError) -> FileFormat {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError { throw .cannotRead(path: path, reason: e.reason) } catch {
            throw .cannotRead(path: path, reason: "\(error)")
        }
        let b = file.bytes
        func starts(with prefix: [UInt8]) -> Bool {
            b.count >= prefix.count && zip(b, prefix).allSatisfy { $0 == $1 }
        }
        if starts(with: [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]) { return .hdf5 }
        if starts(with: [0x50, 0x4B, 0x03, 0x04]) { return KerasSupport.isKerasArchive(b) ? .keras : .pytorchZip }
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
        }
        // ONNX: a protobuf ModelProto starts with a field tag; exporters write ir_version (field 1,
        // varint: 0x08) first, hand-built files may start with any ModelProto field.
        if let first = b.first, [0x08, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42].contains(first) { return .onnx }
        return .unknown
    }
}
