import DLSafeTensors
import DLTensor
import DLTorch
import Foundation

/// The weights of a folder by their Hugging Face names, memory-mapped where the file allows
/// (safetensors always; `pytorch_model.bin` for stored zip entries): `model.safetensors.index.json`
/// (sharded), `model.safetensors`, `pytorch_model.bin.index.json` or `pytorch_model.bin`, the first
/// one present.
public struct HFWeights: Sendable {
    /// The file the names came from (an index for sharded weights).
    public let path: String
    public let tensors: NamedTensors

    /// Weight files a folder may hold, in the order they are looked for.
    public static let fileNames = ["model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin"]

    /// Weights already read (tests, fuzzing): `path` names them in errors.
    public init(path: String, tensors: NamedTensors) {
        self.path = path
        self.tensors = tensors
    }

    public init(folder: String) throws(HFError) {
        let fm = FileManager.default
        guard let name = Self.fileNames.first(where: { fm.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }) else {
            throw .cannotRead(path: folder, reason: "no weights: none of \(Self.fileNames.joined(separator: ", ")) in the folder")
        }
        let p = (folder as NSString).appendingPathComponent(name)
        path = p
        switch name {
        case "model.safetensors.index.json":
            do { tensors = NamedTensors(try ShardedSafeTensors(path: p).tensors()) } catch { throw .safetensors(error) }
        case "model.safetensors":
            do { tensors = NamedTensors(try SafeTensorsFile(path: p).tensors()) } catch { throw .safetensors(error) }
        case "pytorch_model.bin.index.json":
            tensors = try Self.torchShards(index: p, folder: folder)
        default:
            do { tensors = try TorchFile(path: p).stateDict() } catch { throw .torch(error) }
        }
    }

    /// The shards a `pytorch_model.bin.index.json` names in its `weight_map`, each read once; every
    /// name must be in the shard the map gives.
    static func torchShards(index p: String, folder: String) throws(HFError) -> NamedTensors {
        let json = try readJSONFile(p)
        guard case .object(let map)? = json["weight_map"] else { throw .invalid(path: p, reason: "no \"weight_map\" object") }
        var shards: [String: NamedTensors] = [:]
        var out = NamedTensors()
        for m in map {
            guard let file = m.value.stringValue else { throw .invalid(path: p, reason: "weight_map[\"\(m.key)\"] is \(m.value.kindDescription), expected a file name") }
            guard !file.contains("/"), !file.contains("\\"), file != "..", !file.isEmpty else {
                throw .invalid(path: p, reason: "weight_map[\"\(m.key)\"] names '\(file)', not a file of the folder")
            }
            if shards[file] == nil {
                let sp = (folder as NSString).appendingPathComponent(file)
                do { shards[file] = try TorchFile(path: sp).stateDict() } catch { throw .torch(error) }
            }
            guard let t = shards[file]?[m.key] else { throw .weights(path: p, reason: "tensor '\(m.key)' is not in \(file)") }
            out[m.key] = t
        }
        return out
    }
}
