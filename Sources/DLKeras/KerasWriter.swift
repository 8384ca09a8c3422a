import DLGraph
import DLSupport
import DLTensor

/// Writes the weights of a graph that came from Keras back into Keras's files, so that
/// `model.load_weights(path)` restores them: the Keras 3 `.weights.h5` layout or the legacy
/// weights-only `.h5` layout (read by Keras 3 and tf_keras). The graph's metadata (recorded by
/// `KerasImporter`) says which initializer holds which Keras variable and how it was laid out.
public enum KerasWriter {
    public enum Layout: Sendable {
        /// `layers/<group>/vars/<i>` (Keras 3 `save_weights("x.weights.h5")`).
        case keras3
        /// Layer groups at the root with `layer_names` / `weight_names` (`save_weights("x.h5")` in Keras 2).
        case legacy
    }

    /// The Keras layers and variables recorded in `graph`, nil when it did not come from Keras.
    public static func records(of graph: Graph) throws(KerasError) -> [KerasLayerRecord]? {
        guard let text = graph.metadata.metadataProps.last(where: { $0.key == KerasImporter.layoutKey })?.value else { return nil }
        let json: JSON
        do { json = try JSONParser.parse(text) } catch {
            throw .invalidConfig(path: graph.name, reason: "the recorded Keras layout is not JSON: \(error)")
        }
        func ints(_ j: JSON?) -> [Int]? { j?.arrayValue.map { $0.compactMap(\.intValue) } }
        var out: [KerasLayerRecord] = []
        for l in json.arrayValue ?? [] {
            guard let name = l["name"]?.stringValue, let cls = l["class"]?.stringValue, let group = l["group"]?.stringValue else {
                throw .invalidConfig(path: graph.name, reason: "a recorded Keras layer lacks name/class/group")
            }
            var vars: [KerasVariable] = []
            for v in l["vars"]?.arrayValue ?? [] {
                guard let vn = v["name"]?.stringValue, let k3 = v["keras3"]?.stringValue, let lg = v["legacy"]?.stringValue,
                      let shape = ints(v["shape"]), let ini = v["init"]?.stringValue else {
                    throw .invalidConfig(path: graph.name, reason: "layer '\(name)': a recorded variable is incomplete")
                }
                vars.append(KerasVariable(name: vn, keras3Path: k3, legacyName: lg, shape: shape, initializer: ini,
                                          layout: WeightLayout(gates: ints(v["gates"]), perm: ints(v["perm"]), irShape: ints(v["ir_shape"])),
                                          trainable: v["trainable"]?.boolValue ?? true))
            }
            let scope = l["scope"]?.arrayValue?.compactMap(\.stringValue) ?? []
            out.append(KerasLayerRecord(name: name, className: cls, keras3Group: group, variables: vars, scope: scope))
        }
        return out
    }

    /// The recorded Keras layers of `graph` and, per layer, its variables' values back in
    /// Keras's own layout and shape; checked whole before anything is written to `path`.
    public static func variables(of graph: Graph, writing path: String) throws(KerasError) -> ([KerasLayerRecord], [[Tensor]]) {
        guard let records = try records(of: graph) else {
            throw .write(path: path, reason: "the model did not come from Keras (no Keras layer record in its metadata); Keras weights can only be written for models read from Keras files")
        }
        var values: [[Tensor]] = []
        for r in records {
            var vs: [Tensor] = []
            for v in r.variables {
                guard let t = graph.initializers[v.initializer] else {
                    throw .write(path: path, reason: "layer '\(r.name)': the graph has no tensor '\(v.initializer)' for \(v.name)")
                }
                let k: Tensor
                do { k = try v.layout.backward(t, kerasShape: v.shape) } catch {
                    throw .write(path: path, reason: "layer '\(r.name)': \(v.name) (\(t.shape)) does not fit Keras shape \(v.shape): \(error)")
                }
                guard k.shape == v.shape else {
                    throw .write(path: path, reason: "layer '\(r.name)': \(v.name) has shape \(k.shape), Keras expects \(v.shape)")
                }
                vs.append(k)
            }
            values.append(vs)
        }
        return (records, values)
    }

    /// Writes the weights of `graph` to `path` in `layout`, atomically.
    public static func write(_ graph: Graph, to path: String, layout: Layout) throws(KerasError) {
        let (records, values) = try variables(of: graph, writing: path)
        let image: [UInt8] = try HDF5.locked { () throws(KerasError) -> [UInt8] in
            do throws(H5Failure) {
                let w = try H5Writer()
                switch layout {
                case .keras3: try writeKeras3(w, records, values, graphName: graph.name)
                case .legacy: try writeLegacy(w, records, values)
                }
                return try w.image()
            } catch {
                throw .write(path: path, reason: "HDF5 object '\(error.object)': \(error.reason)")
            }
        }
        do {
            let f = try AtomicFileWriter(path: path)
            do {
                try f.write(image)
                try f.commit()
            } catch {
                f.abandon()
                throw error
            }
        } catch { throw .write(path: path, reason: "\(error)") }
    }

    static func writeKeras3(_ w: H5Writer, _ records: [KerasLayerRecord], _ values: [[Tensor]], graphName: String) throws(H5Failure) {
        try w.group("/layers")
        for (r, vs) in zip(records, values) where !r.keras3Group.isEmpty {
            let base = "/layers/\(r.keras3Group)"
            try w.group(base + "/vars")
            try w.setString(base + "/vars", "name", r.name)
            for (v, t) in zip(r.variables, vs) {
                let full = "\(base)/\(v.keras3Path)"
                // Every nested layer on the way (cell, forward_layer, ...) has its own vars group.
                var parts = v.keras3Path.split(separator: "/").map(String.init)
                parts.removeLast()
                var prefix = base
                for p in parts where p != "vars" {
                    prefix += "/\(p)"
                    try w.group(prefix + "/vars")
                }
                try w.group(String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)]))
                try w.dataset(full, t)
            }
        }
        try w.group("/vars")
        try w.setString("/vars", "name", graphName)
    }

    static func writeLegacy(_ w: H5Writer, _ records: [KerasLayerRecord], _ values: [[Tensor]]) throws(H5Failure) {
        // The model's own layers; a nested model's entry holds the variables of every layer
        // inside it, trainable ones first (as `layer.trainable_weights + non_trainable_weights`).
        let top = records.indices.filter { records[$0].scope.isEmpty }
        try w.setStrings("/", "layer_names", top.map { records[$0].name })
        try w.setString("/", "backend", "tensorflow")
        try w.setString("/", "keras_version", "2.21.0")
        for i in top {
            let r = records[i]
            var entries = zip(r.variables, values[i]).map { ($0, $1) }
            if GraphBuilder.modelClasses.contains(r.className) {
                let inside = records.indices.filter { records[$0].scope.first == r.name }
                let all = inside.flatMap { j in zip(records[j].variables, values[j]).map { ($0, $1) } }
                entries = all.filter { $0.0.trainable } + all.filter { !$0.0.trainable }
            }
            let base = "/\(r.name)"
            try w.group(base)
            try w.setStrings(base, "weight_names", entries.map(\.0.legacyName))
            for (v, t) in entries {
                let full = "\(base)/\(v.legacyName)"
                try w.group(String(full[..<(full.lastIndex(of: "/") ?? full.endIndex)]))
                try w.dataset(full, t)
            }
        }
    }
}
