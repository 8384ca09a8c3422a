import DLGraph
import DLKeras
import DLTensor
import Foundation

/// DLKit's bridge to `DLKeras`: Keras files as models, as weights, and as conversion outputs.
enum KerasSupport {
    /// True when the Keras file at `path` holds a model config (not weights only).
    static func hasModel(path: String) -> Bool {
        (try? KerasIsolation.read(path))?.config != nil
    }

    /// The optimizer variables of a Keras 3 file, nil when it has none or is not Keras.
    static func optimizer(path: String) -> KerasOptimizerState? {
        (try? KerasIsolation.read(path))?.optimizer
    }

    static func file(_ path: String) throws(DLKitError) -> KerasFile {
        // In a helper process when one is set (KerasIsolation): libhdf5 may crash on hostile files.
        do { return try KerasIsolation.read(path) } catch { throw .keras(error) }
    }

    /// The graph of a Keras model file (legacy `.h5` with a config, or `.keras`).
    static func graph(path: String) throws(DLKitError) -> Graph {
        let f = try file(path)
        do { return try KerasImporter.graph(from: f) } catch { throw .keras(error) }
    }

    /// The graph of `model` (a Keras file with a config) carrying the weights of `weights`, when
    /// both are Keras files; nil otherwise (the caller binds by name as for other formats).
    static func graph(weights: URL, model: URL) throws(DLKitError) -> Graph? {
        let wf = try FileFormat.detect(path: weights.path), mf = try FileFormat.detect(path: model.path)
        guard wf == .hdf5 || wf == .keras else { return nil }
        guard mf == .hdf5 || mf == .keras else {
            throw .invalidArgument("\(weights.path): Keras weights are bound onto a Keras model (.h5 with a config, or .keras) given as the graph")
        }
        let m = try file(model.path), w = try file(weights.path)
        do { return try KerasImporter.graph(from: m, weights: w) } catch { throw .keras(error) }
    }

    /// The weights of a Keras file: with a config, the graph's initializers (IR layout); without,
    /// each stored variable as `<layer>/<weight name>` in Keras's own layout.
    static func weights(path: String) throws(DLKitError) -> NamedTensors {
        let f = try file(path)
        if f.config != nil {
            do { return try KerasImporter.graph(from: f).initializers } catch { throw .keras(error) }
        }
        var out = NamedTensors()
        // Layers of nested models (Keras 3) are named below their model: `inner/dense/0`.
        func add(_ layers: [KerasLayerWeights], _ prefix: String) {
            for l in layers {
                for (i, w) in l.weights.enumerated() {
                    var name = w.name.hasSuffix(":0") ? String(w.name.dropLast(2)) : w.name
                    if f.kind == .weights || f.kind == .archive { name = "\(l.name)/\(i)" }
                    if !name.hasPrefix(l.name + "/") { name = "\(l.name)/\(name)" }
                    out[prefix + name] = w.tensor
                }
                add(l.sublayers, "\(prefix)\(l.name)/")
            }
        }
        add(f.layers, "")
        return out
    }

    /// Writes the Keras weights of `graph` by the output's name: `.weights.h5` in the Keras 3
    /// layout, other `.h5` in the legacy layout.
    static func write(_ graph: Graph, to output: URL) throws(DLKitError) {
        let layout: KerasWriter.Layout = output.path.lowercased().hasSuffix(".weights.h5") ? .keras3 : .legacy
        do { try KerasWriter.write(graph, to: output.path, layout: layout) } catch { throw .keras(error) }
    }
}

extension Model {
    /// Loads a model whose weights and graph come from two files: Keras weights (`.weights.h5`,
    /// weights-only `.h5`) onto a Keras model file, or any weights `StateDict` reads bound by name
    /// onto an ONNX model or checkpoint.
    public convenience init(contentsOf url: URL, graph graphURL: URL) throws(DLKitError) {
        let base = url.deletingPathExtension().lastPathComponent
        let name = base.hasSuffix(".weights") ? String(base.dropLast(8)) : base
        if let g = try KerasSupport.graph(weights: url, model: graphURL) {
            try self.init(graph: g, name: name, format: try FileFormat.detect(path: url.path))
            return
        }
        let weights = try StateDict(contentsOf: url)
        let (g, _) = try Model.loadGraph(path: graphURL.path)
        let bound = try WeightBinding.bind(weights, onto: g, weightsName: url.path, graphName: graphURL.path)
        try self.init(graph: bound.graph, name: name, format: try FileFormat.detect(path: url.path))
    }

    /// Loads a model like `init(contentsOf:)`, reading a Keras (HDF5) file in a child process of
    /// `hdf5Helper` (a DLKit tool, or an executable calling `KerasIsolation.serveIfHelper()`)
    /// whatever `KerasIsolation.helper` says: a file that crashes libhdf5 gives
    /// `KerasError.readerCrashed` instead of taking this process down. Other formats load as usual.
    public convenience init(contentsOf url: URL, hdf5Helper: URL) throws(DLKitError) {
        let format = try FileFormat.detect(path: url.path)
        guard format == .hdf5 || format == .keras else {
            try self.init(contentsOf: url)
            return
        }
        let graph: Graph
        do { graph = try KerasImporter.graph(from: try KerasIsolation.readInHelper(url.path, helper: hdf5Helper)) } catch { throw .keras(error) }
        try self.init(graph: graph, name: url.deletingPathExtension().lastPathComponent, format: format)
    }
}
