import DLSupport
import DLTensor
import Foundation

/// Writes a TensorFlow.js layers-model: `model.json` (`format`, `generatedBy`, `convertedBy`,
/// `modelTopology`, `weightsManifest`) and one weight group cut into `group1-shardKofN.bin` files
/// of `shardBytes` each (the last one shorter), as tensorflowjs's converter lays them out.
///
/// Weights are stored in the dtypes TF.js reads: float32 (other float types converted), int32
/// (other integer types, when every value fits) and bool. The shards are written first and
/// `model.json` last, each through a temporary file; on failure the shards already written are
/// removed, so no `model.json` names missing or partial shards.
public enum TFJSWriter {
    /// tensorflowjs's default shard size: 4 MiB.
    public static let defaultShardBytes = 4 * 1024 * 1024

    package static func writeLayersModel(topology: JSON, weights: [(name: String, tensor: Tensor)], to path: String,
                                        shardBytes: Int = defaultShardBytes, generatedBy: String? = nil) throws(TensorFlowError) {
        guard shardBytes > 0 else { throw .cannotWrite(path: path, reason: "the shard size must be positive") }
        var specs: [JSON] = []
        var data: [UInt8] = []
        for (name, t) in weights {
            let stored = try storable(t, name: name, path: path)
            specs.append(.object([("name", .string(name)), ("shape", .array(stored.shape.map { JSON.int($0) })),
                                  ("dtype", .string(stored.dtype == .int32 ? "int32" : stored.dtype == .bool ? "bool" : "float32"))]))
            stored.withUnsafeBytes { data += $0 }
        }
        let dir = (path as NSString).deletingLastPathComponent
        do { try FileManager.default.createDirectory(atPath: dir.isEmpty ? "." : dir, withIntermediateDirectories: true) } catch {
            throw .cannotWrite(path: path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let count = max(1, (data.count + shardBytes - 1) / shardBytes)
        let names = (1...count).map { "group1-shard\($0)of\(count).bin" }
        var written: [String] = []
        func removeWritten() { for p in written { try? FileManager.default.removeItem(atPath: p) } }
        do throws(AtomicFileError) {
            for (i, name) in names.enumerated() {
                let shardPath = dir.isEmpty ? name : dir + "/" + name
                let lo = min(i * shardBytes, data.count), hi = min(lo + shardBytes, data.count)
                let f = try AtomicFileWriter(path: shardPath)
                try f.write(Array(data[lo..<hi]))
                try f.commit()
                written.append(shardPath)
            }
            var members: [(String, JSON)] = [("format", .string("layers-model"))]
            if let generatedBy { members.append(("generatedBy", .string(generatedBy))) }
            members += [("convertedBy", .string("DLKit")), ("modelTopology", topology),
                        ("weightsManifest", .array([.object([("paths", .array(names.map { .string($0) })), ("weights", .array(specs))])]))]
            let f = try AtomicFileWriter(path: path)
            try f.write(JSON.object(members).serialized())
            try f.commit()
        } catch {
            removeWritten()
            throw .cannotWrite(path: path, reason: "\(error)")
        }
    }

    /// `t` in a dtype TF.js reads, or why it cannot be.
    static func storable(_ t: Tensor, name: String, path: String) throws(TensorFlowError) -> Tensor {
        switch t.dtype {
        case .float32, .int32, .bool: return t
        case .float16, .bfloat16, .float64: return t.converted(to: .float32)
        case .int8, .int16, .uint8, .uint16, .int64, .uint32, .uint64:
            let values = t.doubles()
            guard values.allSatisfy({ $0 >= Double(Int32.min) && $0 <= Double(Int32.max) }) else {
                throw .badTensor(path: path, tensor: name, reason: "\(t.dtype) values outside int32, which TF.js weights cannot hold")
            }
            return t.converted(to: .int32)
        default:
            throw .badTensor(path: path, tensor: name, reason: "dtype \(t.dtype) has no TF.js weight type")
        }
    }
}
