import DLSupport
import DLTensor

/// A model split over several safetensors files, described by a `model.safetensors.index.json`:
/// `{"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}`.
///
/// Opening parses the index and opens (maps and validates) each shard once. Shard names must be
/// plain file names in the index's folder (no `/` or `..`), so an index cannot point elsewhere.
/// Every tensor the map names must be in the shard it names; tensors come out in shard order,
/// and within a shard in file order, each a view into its shard's mapping.
public struct ShardedSafeTensors: Sendable {
    public let path: String
    /// The index's `metadata` values that are strings or numbers, as text.
    public let metadata: [String: String]
    /// The shard files, in the order the map first names them.
    public let shards: [SafeTensorsFile]
    /// Tensor name → index into `shards`.
    private let shardOf: [String: Int]

    /// The largest index file read (the map of a model with millions of tensors fits easily).
    public static let maxIndexLength = 100_000_000

    /// True when `path` names a sharded index by its file name.
    public static func isIndex(path: String) -> Bool { path.hasSuffix(".safetensors.index.json") }

    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let e as MappedFileError {
            throw .cannotOpen(path: path, reason: e.reason)
        } catch { throw .cannotOpen(path: path, reason: "\(error)") }
        guard file.byteCount <= Self.maxIndexLength else {
            throw .headerTooLarge(path: path, headerLength: UInt64(file.byteCount), limit: Self.maxIndexLength)
        }
        let root: JSON
        do { root = try JSONParser.parse(file.bytes) } catch { throw .invalidJSON(path: path, offset: error.offset, detail: error.message) }
        guard case .object(let members) = root else { throw .invalidJSON(path: path, offset: 0, detail: "the index must be a JSON object") }
        var meta: [String: String] = [:]
        var map: [(String, String, Int)] = []
        for m in members {
            switch (m.key, m.value) {
            case ("metadata", .object(let items)):
                for i in items {
                    switch i.value {
                    case .string(let s): meta[i.key] = s
                    case .number(let n): meta[i.key] = n
                    default: break
                    }
                }
            case ("weight_map", .object(let items)):
                for i in items {
                    guard case .string(let f) = i.value else {
                        throw .invalidEntry(path: path, name: i.key, offset: i.offset, detail: "its shard is \(i.value.kindDescription), not a file name")
                    }
                    map.append((i.key, f, i.offset))
                }
            case ("weight_map", _):
                throw .invalidJSON(path: path, offset: m.offset, detail: "weight_map must be an object")
            default: break
            }
        }
        guard !map.isEmpty else { throw .invalidJSON(path: path, offset: 0, detail: "the index has no weight_map entries") }
        let folder = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        var files: [SafeTensorsFile] = []
        var fileIndex: [String: Int] = [:]
        var shardOf: [String: Int] = [:]
        for (name, shard, offset) in map {
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != "..", shard != "." else {
                throw .invalidEntry(path: path, name: name, offset: offset, detail: "shard '\(shard)' is not a plain file name beside the index")
            }
            let i: Int
            if let known = fileIndex[shard] { i = known } else {
                i = files.count
                files.append(try SafeTensorsFile(path: folder + shard))
                fileIndex[shard] = i
            }
            guard files[i].entry(name) != nil else { throw .tensorNotFound(path: folder + shard, name: name) }
            guard shardOf[name] == nil else { throw .duplicateName(path: path, name: name, offset: offset) }
            shardOf[name] = i
        }
        metadata = meta
        shards = files
        self.shardOf = shardOf
    }

    /// Tensor names: shard by shard, each in file order.
    public var names: [String] {
        shards.enumerated().flatMap { (i, f) in f.names.filter { shardOf[$0] == i } }
    }

    public func tensor(named name: String) throws(SafeTensorsError) -> Tensor {
        guard let i = shardOf[name] else { throw .tensorNotFound(path: path, name: name) }
        return try shards[i].tensor(named: name)
    }

    /// Every mapped tensor, shard by shard.
    public func tensors() throws(SafeTensorsError) -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for n in names { out.append((n, try tensor(named: n))) }
        return out
    }
}
