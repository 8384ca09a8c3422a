import DLGraph
import DLONNX
import DLSafeTensors
import DLSupport
import DLTensor
import Foundation

/// The native checkpoint (`.ckpt`, `formats/ckpt.md`): a safetensors file whose tensors are the
/// graph's initializers under their source names, with the graph itself (as ONNX without those
/// weights) and format facts in the metadata.
public struct Checkpoint: Sendable {
    public static let version = 1
    static let versionKey = "dlkit.ckpt_version"
    static let graphKey = "dlkit.graph"
    static let initializersKey = "dlkit.initializers"

    public var graph: Graph
    /// Metadata keys other than DLKit's own, kept as read.
    public var extraMetadata: [String: String]
    /// Optimizer state and progress of a training run, when the file carries them.
    public var training: TrainingState? = nil

    public init(graph: Graph, extraMetadata: [String: String] = [:]) {
        self.graph = graph
        self.extraMetadata = extraMetadata
    }

    /// True when `file` is a safetensors file carrying a DLKit checkpoint version.
    public static func isCheckpoint(_ file: SafeTensorsFile) -> Bool {
        file.metadata[versionKey] != nil
    }

    /// Reads a checkpoint; weights are memory-mapped views of the file.
    /// - Parameter checkOps: verify that the graph runs in the IR (off for inspecting or weights only).
    public init(contentsOf path: String, checkOps: Bool = true) throws(CheckpointError) {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch { throw .safetensors(error) }
        try self.init(file: file, checkOps: checkOps)
    }

    public init(file: SafeTensorsFile, checkOps: Bool = true) throws(CheckpointError) {
        let path = file.path
        guard let v = file.metadata[Self.versionKey] else { throw .notCheckpoint(path: path) }
        guard let version = Int(v), version >= 1 else { throw .invalidMetadata(path: path, key: Self.versionKey, reason: "'\(v)' is not a version number") }
        guard version <= Self.version else { throw .newerVersion(path: path, version: version, supported: Self.version) }
        guard let encoded = file.metadata[Self.graphKey] else {
            throw .invalidMetadata(path: path, key: Self.graphKey, reason: "is missing")
        }
        guard let bytes = Base64.decode(encoded) else {
            throw .invalidMetadata(path: path, key: Self.graphKey, reason: "is not valid base64")
        }
        let names: [String]
        if let list = file.metadata[Self.initializersKey] {
            let parsed: JSON
            do { parsed = try JSONParser.parse(list) } catch {
                throw .invalidMetadata(path: path, key: Self.initializersKey, reason: "is not JSON: \(error)")
            }
            guard case .array(let items) = parsed else {
                throw .invalidMetadata(path: path, key: Self.initializersKey, reason: "is not a JSON array of strings")
            }
            var decoded: [String] = []
            for item in items {
                guard case .string(let s) = item else {
                    throw .invalidMetadata(path: path, key: Self.initializersKey, reason: "is not a JSON array of strings")
                }
                decoded.append(s)
            }
            names = decoded
        } else {
            names = file.names.filter { !$0.hasPrefix(TrainingState.slotPrefix) && !$0.hasPrefix(TrainingState.bestPrefix) }
        }
        var graph: Graph
        do {
            graph = try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws(ONNXError) -> Graph in
                try ONNXReader.read(bytes: raw, path: "\(path) (stored graph)", directory: "/nonexistent", checkOps: false)
            }
        } catch let e as ONNXError { throw .graph(e) } catch { throw .invalidMetadata(path: path, key: Self.graphKey, reason: "\(error)") }
        for name in names {
            guard file.entry(name) != nil else { throw .missingTensor(path: path, name: name) }
            do { graph.initializers[name] = try file.tensor(named: name) } catch { throw .safetensors(error) }
        }
        // Graph inputs that name a stored weight are initializers the caller may override.
        let stored = Set(names)
        graph.overridableInitializers += graph.inputs.filter { stored.contains($0.name) }.map(\.name)
        graph.inputs.removeAll { stored.contains($0.name) }
        if checkOps {
            do { try ONNXReader.validate(&graph, path: path) } catch { throw .graph(error) }
        }
        self.graph = graph
        var extra = file.metadata
        for k in [Self.versionKey, Self.graphKey, Self.initializersKey, "format", TrainingState.optimizerKey, TrainingState.progressKey] { extra[k] = nil }
        extraMetadata = extra
        training = try TrainingState.decode(metadata: file.metadata, tensor: { (name: String) throws(CheckpointError) -> Tensor? in
            guard file.entry(name) != nil else { throw .missingTensor(path: path, name: name) }
            do throws(SafeTensorsError) { return try file.tensor(named: name) } catch { throw .safetensors(error) }
        }, path: path)
    }

    /// Writes the checkpoint atomically.
    public func write(to path: String) throws(CheckpointError) {
        var inGraph = graph
        var tensors: [(name: String, tensor: Tensor)] = []
        var kept = NamedTensors()
        for (name, t) in graph.initializers {
            if t.dtype == .string { kept[name] = t } else { tensors.append((name, t)) }
        }
        // The stored graph carries only what safetensors cannot (string tensors). Overridable
        // weights stay listed as graph inputs so the reader can mark them again.
        for name in graph.overridableInitializers {
            guard let t = graph.initializers[name], t.dtype != .string else { continue }
            inGraph.inputs.append(ValueInfo(name: name, type: TensorType(dtype: t.dtype, shape: t.shape)))
        }
        inGraph.overridableInitializers.removeAll { kept[$0] == nil }
        inGraph.initializers = kept
        let names = tensors.map(\.name)
        let proto = ONNXWriter.serialize(inGraph, includeInitializers: true, keepSource: true)
        var metadata = extraMetadata
        metadata["format"] = "dlkit"
        metadata[Self.versionKey] = String(Self.version)
        metadata[Self.graphKey] = Base64.encode(proto)
        metadata[Self.initializersKey] = JSON.array(names.map { .string($0) }).serialized()
        if let training {
            let (meta, slotTensors) = try training.encoded(path: path)
            for (k, v) in meta { metadata[k] = v }
            tensors += slotTensors
        }
        do { try SafeTensorsWriter.write(tensors, metadata: metadata, to: path) } catch { throw .safetensors(error) }
    }
}

public enum CheckpointError: Error, CustomStringConvertible {
    case safetensors(SafeTensorsError)
    case graph(ONNXError)
    case notCheckpoint(path: String)
    case newerVersion(path: String, version: Int, supported: Int)
    case invalidMetadata(path: String, key: String, reason: String)
    case missingTensor(path: String, name: String)

    public var description: String {
        switch self {
        case .safetensors(let e): "\(e)"
        case .graph(let e): "\(e)"
        case .notCheckpoint(let p): "\(p): a safetensors file without a DLKit graph (no '\(Checkpoint.versionKey)' metadata); it holds weights only"
        case .newerVersion(let p, let v, let s): "\(p): checkpoint version \(v) is newer than this DLKit reads (\(s)); update DLKit"
        case .invalidMetadata(let p, let k, let r): "\(p): metadata '\(k)' \(r)"
        case .missingTensor(let p, let n): "\(p): the graph needs tensor '\(n)', which the file does not hold"
        }
    }
}
