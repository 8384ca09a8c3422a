import DLGraph
import DLKeras
import DLSupport
import DLTensor
import DLTensorFlow
import Foundation

/// DLKit's bridge for TensorFlow.js `model.json`: graph-models through DLTensorFlow's importer,
/// layers-models (a Keras config and Keras-named weights) through DLKeras's. The two format
/// targets do not import each other; this is where they meet.
enum TFJSSupport {
    static func model(_ path: String) throws(DLKitError) -> TFJSModel {
        do { return try TFJSModel(path: path) } catch { throw .tensorflow(error) }
    }

    static func graph(path: String, checkOps: Bool = true) throws(DLKitError) -> Graph {
        let m = try model(path)
        switch m.kind {
        case .graphModel:
            do { return try m.graph(checkOps: checkOps) } catch { throw .tensorflow(error) }
        case .layersModel:
            do { return try KerasImporter.graph(from: try kerasFile(m)) } catch { throw .keras(error) }
        }
    }

    /// A layers-model as the Keras importer sees a file: its config, and per layer the weights
    /// in manifest order. A weight `model/layer/.../kernel` belongs to the innermost path
    /// component that names a layer of the config.
    static func kerasFile(_ m: TFJSModel) throws(KerasError) -> KerasFile {
        guard let config = m.kerasConfig else { throw .invalidConfig(path: m.path, reason: "the layers-model has no model_config") }
        var layerNames = Set<String>()
        collectLayerNames(config, into: &layerNames)
        var order: [String] = []
        var byLayer: [String: [(name: String, tensor: Tensor)]] = [:]
        for (name, t) in m.weights {
            let parts = name.split(separator: "/").map(String.init)
            guard let layer = parts.dropLast().last(where: { layerNames.contains($0) }) else {
                throw .weights(path: m.path, reason: "weight '\(name)' names no layer of the model config")
            }
            if byLayer[layer] == nil { order.append(layer) }
            byLayer[layer, default: []].append((name, t))
        }
        let layers = order.map { KerasLayerWeights(name: $0, group: $0, weights: byLayer[$0] ?? []) }
        return KerasFile(path: m.path, kind: .legacyModel, config: config, layers: layers, optimizer: nil,
                         kerasVersion: m.kerasVersion, backend: nil)
    }

    /// Writes a Keras-sourced graph as a TF.js layers-model at `output` (`DIR/model.json` and
    /// its shards beside it).
    static func writeLayersModel(_ graph: Graph, to output: URL) throws(DLKitError) {
        let parts: KerasTFJS.Parts
        do { parts = try KerasTFJS.parts(of: graph, writing: output.path) } catch { throw .keras(error) }
        do { try TFJSWriter.writeLayersModel(topology: parts.topology, weights: parts.weights, to: output.path) } catch { throw .tensorflow(error) }
    }

    private static func collectLayerNames(_ j: JSON, into names: inout Set<String>) {
        if case .array(let layers)? = j["config"]?["layers"] {
            for l in layers {
                if case .string(let n)? = l["config"]?["name"] { names.insert(n) }
                collectLayerNames(l, into: &names)
            }
        }
    }
}
