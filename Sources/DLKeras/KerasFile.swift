import DLSupport
import DLTensor
import Foundation

/// The weights of one Keras layer, in the order of `layer.weights`.
public struct KerasLayerWeights: Sendable {
    /// The layer's name (from `layer_names`, or a Keras 3 group's `name` attribute).
    public var name: String
    /// Where the weights were found in the file (`model_weights/dense`, `layers/dense_1`).
    public var group: String
    public var weights: [(name: String, tensor: Tensor)]
    /// The layers of a nested model (a Functional or Sequential model used as a layer) in a
    /// Keras 3 file (`layers/<model>/layers/...`). Legacy files keep a nested model's weights
    /// flat in `weights` under their layer-scoped names; the importer splits them.
    public var sublayers: [KerasLayerWeights] = []

    public init(name: String, group: String, weights: [(name: String, tensor: Tensor)], sublayers: [KerasLayerWeights] = []) {
        self.name = name
        self.group = group
        self.weights = weights
        self.sublayers = sublayers
    }
}

/// The optimizer variables a Keras 3 file keeps beside the model's (`optimizer/vars/<i>`, in
/// numeric order: for Adam the iteration count, the learning rate, then each trainable
/// variable's momentum and velocity). The file names only the optimizer, not its variables.
public struct KerasOptimizerState: Sendable {
    /// The optimizer's name (`adam`), from the `name` attribute of `optimizer/vars`.
    public var name: String
    /// `optimizer/vars/<i>` and its value.
    public var variables: [(name: String, tensor: Tensor)]

    public init(name: String, variables: [(name: String, tensor: Tensor)]) {
        self.name = name
        self.variables = variables
    }
}

/// A Keras file read into its parts: the model configuration when the file has one, and the
/// weights per layer. Reads every generation: legacy full models and weights-only `.h5`
/// (Keras 2.0 to tf_keras and Keras 3's legacy writer), Keras 3 `.weights.h5`, `.keras` archives.
public struct KerasFile: Sendable {
    public enum Kind: String, Sendable {
        case legacyModel = "legacy .h5 model"
        case legacyWeights = "legacy .h5 weights"
        case weights = "Keras 3 .weights.h5"
        case archive = ".keras archive"
    }

    public var path: String
    public var kind: Kind
    /// The model config: an object with `class_name` and `config` (nil in weights-only files).
    package var config: JSON?
    public var kerasVersion: String?
    public var backend: String?
    /// Layers with their weights, in file order (layers without weights included for legacy files).
    public var layers: [KerasLayerWeights]
    /// The optimizer's variables when a Keras 3 file holds them (a compiled, trained model).
    public var optimizer: KerasOptimizerState?

    /// Reads an HDF5 Keras file (`.h5`, `.weights.h5`) or a `.keras` archive.
    init(path: String, kind: Kind, config: JSON?, layers: [KerasLayerWeights]) {
        self.path = path
        self.kind = kind
        self.config = config
        self.layers = layers
    }

    /// A file's parts as read elsewhere (DLKit's `KerasIsolation` rebuilds what a helper process read).
    package init(path: String, kind: Kind, config: JSON?, layers: [KerasLayerWeights], optimizer: KerasOptimizerState?,
                kerasVersion: String?, backend: String?) {
        self.init(path: path, kind: kind, config: config, layers: layers)
        self.optimizer = optimizer
        self.kerasVersion = kerasVersion
        self.backend = backend
    }

    /// A model known only by its `model_config` JSON (no weights): what `KerasImporter.graph`
    /// needs to build the graph; `path` names it in messages. Used by the fuzz target.
    package init(config: JSON, path: String) {
        self.init(path: path, kind: .legacyModel, config: config, layers: [])
    }

    public init(path: String) throws(KerasError) {
        let bytes = try Self.head(path)
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            self = try Self.readArchive(path: path)
            return
        }
        self = try HDF5.locked { () throws(KerasError) -> KerasFile in
            let r: H5Reader
            do throws(H5Failure) { r = try H5Reader(path: path) } catch { throw KerasError(error, path: path) }
            return try Self.read(r, path: path, config: nil, archive: false)
        }
    }

    private static func head(_ path: String) throws(KerasError) -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { throw .hdf5(path: path, object: "/", reason: "cannot open the file") }
        defer { try? h.close() }
        let d = (try? h.read(upToCount: 8)) ?? Data()
        return [UInt8](d ?? Data())
    }

    private static func readArchive(path: String) throws(KerasError) -> KerasFile {
        let zip = try KerasArchive(path: path)
        guard let configBytes = try zip.entry("config.json") else { throw .archive(path: path, reason: "no config.json") }
        guard let weights = try zip.entry("model.weights.h5") else { throw .archive(path: path, reason: "no model.weights.h5") }
        let config: JSON
        do {
            config = try JSONParser.parse(configBytes)
        } catch { throw .archive(path: path, reason: "config.json: \(error)") }
        var file = try HDF5.locked { () throws(KerasError) -> KerasFile in
            let r: H5Reader
            do throws(H5Failure) { r = try H5Reader(image: weights) } catch {
                throw KerasError(error, path: "\(path)/model.weights.h5")
            }
            return try Self.read(r, path: path, config: config, archive: true)
        }
        if let meta = try zip.entry("metadata.json"),
           let m = try? JSONParser.parse(meta) {
            file.kerasVersion = m["keras_version"]?.stringValue
        }
        return file
    }

    private static func read(_ r: H5Reader, path: String, config: JSON?, archive: Bool) throws(KerasError) -> KerasFile {
        func h5<T>(_ body: () throws(H5Failure) -> T) throws(KerasError) -> T {
            do { return try body() } catch { throw KerasError(error, path: path) }
        }
        // Keras 3 layout: layers/<name>/vars/<i>.
        for root in ["layers", "_layer_checkpoint_dependencies"] where r.isGroup("/" + root) {
            var file = KerasFile(path: path, kind: archive ? .archive : .weights, config: config, layers: [])
            var walk = GroupWalk()
            file.layers = try h5({ () throws(H5Failure) in try Self.keras3Layers(r, "/" + root, &walk) })
            if r.isGroup("/optimizer/vars") {
                var optimizerWalk = GroupWalk()
                let vars = try h5({ () throws(H5Failure) in try Self.keras3Vars(r, "/optimizer", &optimizerWalk) })
                let name = try h5({ () throws(H5Failure) in try r.optionalString("/optimizer/vars", "name") }) ?? "optimizer"
                file.optimizer = KerasOptimizerState(name: name, variables: vars.map { (String($0.0.dropFirst()), $0.1) })
            }
            return file
        }
        if archive { throw .archive(path: path, reason: "model.weights.h5 has no 'layers' group") }
        // Legacy layout: layer_names on model_weights (full model) or on the root (weights only).
        let full = r.isGroup("/model_weights")
        let base = full ? "/model_weights" : "/"
        guard let layerNames = try h5({ () throws(H5Failure) in try Self.splitStrings(r, base, "layer_names") }) else {
            throw .notKeras(path: path, reason: full ? "model_weights has no layer_names attribute"
                            : "no model_weights group, layer_names attribute or layers group")
        }
        var file = KerasFile(path: path, kind: full ? .legacyModel : .legacyWeights, config: nil, layers: [])
        file.kerasVersion = try h5({ () throws(H5Failure) in try r.optionalString("/", "keras_version") })
        file.backend = try h5({ () throws(H5Failure) in try r.optionalString("/", "backend") })
        if full {
            guard r.hasAttribute("/", "model_config") else { throw .notKeras(path: path, reason: "model_weights without a model_config attribute") }
            let text = try h5({ () throws(H5Failure) in try r.string("/", "model_config") })
            do {
                file.config = try JSONParser.parse(text)
            } catch { throw .invalidConfig(path: path, reason: "model_config is not JSON: \(error)") }
        }
        let prefix = full ? "model_weights/" : ""
        for layer in layerNames {
            let groupPath = base == "/" ? "/\(layer)" : "\(base)/\(layer)"
            guard r.isGroup(groupPath) else { throw .weights(path: path, reason: "layer '\(layer)' is listed in layer_names but has no group") }
            let names = try h5({ () throws(H5Failure) in try Self.splitStrings(r, groupPath, "weight_names") }) ?? []
            var ws: [(String, Tensor)] = []
            for wn in names {
                guard let dsPath = Self.locateLegacy(r, groupPath, wn) else {
                    throw .weights(path: path, reason: "layer '\(layer)': weight '\(wn)' is listed but not stored")
                }
                let t = try h5({ () throws(H5Failure) in try r.dataset(dsPath) })
                ws.append((wn, t))
            }
            file.layers.append(KerasLayerWeights(name: layer, group: prefix + layer, weights: ws))
        }
        return file
    }

    /// A string-list attribute, or its pieces `name0`, `name1`, ... when Keras split it (over
    /// 64 kB); nil when neither exists.
    static func splitStrings(_ r: H5Reader, _ path: String, _ name: String) throws(H5Failure) -> [String]? {
        if r.hasAttribute(path, name) { return try r.strings(path, name) }
        guard r.hasAttribute(path, "\(name)0") else { return nil }
        var all: [String] = []
        var i = 0
        while r.hasAttribute(path, "\(name)\(i)") {
            all += try r.strings(path, "\(name)\(i)")
            i += 1
        }
        return all
    }

    /// Finds the dataset of a legacy weight name: as written (`dense/kernel:0`), without `:0`, or
    /// with the inner group suffixed `_1` (Keras 2.0: `conv2d_1/conv2d_1_1/kernel:0`).
    static func locateLegacy(_ r: H5Reader, _ group: String, _ weightName: String) -> String? {
        var candidates = [weightName]
        let bare = weightName.hasSuffix(":0") ? String(weightName.dropLast(2)) : weightName
        candidates += [bare, bare + ":0"]
        var parts = bare.split(separator: "/").map(String.init)
        if parts.count >= 2 {
            parts[0] += "_1"
            let alt = parts.joined(separator: "/")
            candidates += [alt, alt + ":0"]
        }
        for c in candidates where r.isDataset("\(group)/\(c)") { return "\(group)/\(c)" }
        return nil
    }

    /// Bounds the recursive walks over layer groups. HDF5 links may form cycles (a hard link to
    /// the group itself, a soft link to an ancestor), so the walk would never end: the nesting
    /// depth and the number of groups visited are limited, and passing either is an error.
    struct GroupWalk {
        static let maxDepth = 64
        static let maxGroups = 100_000
        var depth = 0
        var visited = 0
        /// File addresses of the groups being walked, outermost first.
        var open: [UInt64] = []

        mutating func enter(_ group: String, _ r: H5Reader) throws(H5Failure) {
            depth += 1
            visited += 1
            let address = r.address(group) ?? UInt64.max
            if address != UInt64.max, open.contains(address) {
                throw H5Failure(object: group, reason: "cyclic link: the group contains itself")
            }
            open.append(address)
            if depth > Self.maxDepth {
                throw H5Failure(object: group, reason: "groups nest deeper than \(Self.maxDepth) (a cyclic link?)")
            }
            if visited > Self.maxGroups {
                throw H5Failure(object: group, reason: "more than \(Self.maxGroups) groups to walk (a cyclic link?)")
            }
        }

        mutating func leave() {
            depth -= 1
            open.removeLast()
        }
    }

    /// The layer groups below `container` (`/layers`, or `<model>/layers` of a nested model).
    static func keras3Layers(_ r: H5Reader, _ container: String) throws(H5Failure) -> [KerasLayerWeights] {
        var walk = GroupWalk()
        return try keras3Layers(r, container, &walk)
    }

    static func keras3Layers(_ r: H5Reader, _ container: String, _ walk: inout GroupWalk) throws(H5Failure) -> [KerasLayerWeights] {
        try walk.enter(container, r)
        defer { walk.leave() }
        var out: [KerasLayerWeights] = []
        for g in try r.children(container) {
            let groupPath = "\(container)/\(g)"
            guard r.isGroup(groupPath) else { continue }
            var name = g
            if let n = try r.optionalString(groupPath + "/vars", "name") { name = n }
            else if let n = try r.optionalString(groupPath, "name") { name = n }
            let ws = try Self.keras3Vars(r, groupPath, &walk)
            var layer = KerasLayerWeights(name: name, group: String(groupPath.dropFirst()), weights: ws)
            if r.isGroup(groupPath + "/layers") { layer.sublayers = try keras3Layers(r, groupPath + "/layers", &walk) }
            out.append(layer)
        }
        return out
    }

    /// A Keras 3 layer group's variables: its own `vars/<i>` in numeric order, then those of
    /// nested layers (RNN `cell`, Bidirectional `forward_layer` before `backward_layer`, ...).
    static func keras3Vars(_ r: H5Reader, _ group: String) throws(H5Failure) -> [(String, Tensor)] {
        var walk = GroupWalk()
        return try keras3Vars(r, group, &walk)
    }

    static func keras3Vars(_ r: H5Reader, _ group: String, _ walk: inout GroupWalk) throws(H5Failure) -> [(String, Tensor)] {
        try walk.enter(group, r)
        defer { walk.leave() }
        var out: [(String, Tensor)] = []
        let varsPath = "\(group)/vars"
        if r.isGroup(varsPath) {
            let keys = try r.children(varsPath)
            let numbered = keys.compactMap { k -> (Int, String)? in Int(k).map { ($0, k) } }.sorted { $0.0 < $1.0 }
            for (_, k) in numbered { out.append(("\(group)/vars/\(k)", try r.dataset("\(varsPath)/\(k)"))) }
        }
        let rank: (String) -> Int = { ["forward_layer": 0, "backward_layer": 1, "cell": 2, "layer": 3][$0] ?? 4 }
        // A nested model's `layers` are its sublayers, not variables of its own.
        let subgroups = try r.children(group).filter { $0 != "vars" && $0 != "layers" && r.isGroup("\(group)/\($0)") }
            .sorted { (rank($0), $0) < (rank($1), $1) }
        for s in subgroups { out += try keras3Vars(r, "\(group)/\(s)", &walk) }
        return out
    }
}

extension KerasError {
    /// A libhdf5 failure, or a fault our structural check found at a byte offset.
    init(_ failure: H5Failure, path: String) {
        if let offset = failure.offset {
            self = .malformedHDF5(path: path, offset: offset, reason: failure.reason)
        } else {
            self = .hdf5(path: path, object: failure.object, reason: failure.reason)
        }
    }
}
