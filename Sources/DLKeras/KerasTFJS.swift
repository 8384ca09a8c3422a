import DLGraph
import DLSupport
import DLTensor

/// A Keras-sourced graph as a TensorFlow.js layers-model holds it: `modelTopology` (the Keras
/// model config in the tf_keras 2 form, the one tfjs-layers and tensorflowjs's Python loader
/// read) and the weights named as tf_keras names its variables (`dense/kernel`).
///
/// Keras 3 configs are rewritten into that form: serialized objects lose `module` and
/// `registered_name`, dtype policies become their name, `InputLayer.batch_shape` becomes
/// `batch_input_shape`, Functional `inbound_nodes` become `[[layer, node, tensor, kwargs]]` lists
/// (node numbers of nested models shifted as tf_keras counts them), and Keras-3-only options are
/// dropped when they hold their neutral value; any other value is refused by layer and key, since
/// dropping it would change what the model computes.
public enum KerasTFJS {
    public struct Parts: Sendable {
        /// `modelTopology`: `keras_version`, `backend`, `model_config`.
        package var topology: JSON
        /// In the layers' order, each layer's variables in Keras's order.
        public var weights: [(name: String, tensor: Tensor)]
    }

    public static func parts(of graph: Graph, writing path: String) throws(KerasError) -> Parts {
        guard let text = graph.metadata.metadataProps.last(where: { $0.key == KerasImporter.configKey })?.value else {
            throw .write(path: path, reason: "the model did not come from a Keras model file (no Keras config in its metadata); a TF.js layers-model is written from .h5 with a config, .keras, a TF.js layers-model, or DLKit's ONNX/.ckpt export of one")
        }
        let record: JSON
        do { record = try JSONParser.parse(text) } catch {
            throw .invalidConfig(path: graph.name, reason: "the recorded Keras config is not JSON: \(error)")
        }
        guard let config = record["model_config"] else { throw .invalidConfig(path: graph.name, reason: "the recorded Keras config has no model_config") }
        let version = record["keras_version"]?.stringValue ?? "3"
        let converter = Converter(path: path)
        if let lambda = Converter.firstLambda(config) {
            throw .write(path: path, reason: "layer '\(lambda)': a Lambda layer holds Python code, which TF.js cannot run")
        }
        let modelConfig = version.hasPrefix("3") ? try converter.layer(config, legacyTop: true) : Converter.renamingClasses(config)
        // A rewritten Keras 3 config is in tf_keras 2.21's form, and says so.
        let topology = JSON.object([
            ("keras_version", .string(version.hasPrefix("3") ? "2.21.0" : version)),
            ("backend", .string(record["backend"]?.stringValue ?? "tensorflow")),
            ("model_config", modelConfig),
        ])
        let (records, values) = try KerasWriter.variables(of: graph, writing: path)
        var weights: [(name: String, tensor: Tensor)] = []
        var seen = Set<String>()
        for (r, vs) in zip(records, values) {
            for (v, t) in zip(r.variables, vs) {
                let name = v.legacyName.hasSuffix(":0") ? String(v.legacyName.dropLast(2)) : v.legacyName
                guard seen.insert(name).inserted else {
                    throw .write(path: path, reason: "layer '\(r.name)': two variables are both named '\(name)'; TF.js matches weights by name")
                }
                weights.append((name, t))
            }
        }
        return Parts(topology: topology, weights: weights)
    }

    /// Keras 3 config → tf_keras 2 config.
    struct Converter {
        let path: String

        /// Options Keras 3 writes that tf_keras does not take, with the value that means "off";
        /// nil: the option only matters in training (a dropout seed) and is always dropped.
        static let keras3Only: [String: [(key: String, neutral: JSON?)]] = {
            let recurrent: [(key: String, neutral: JSON?)] = [("seed", nil), ("use_cudnn", nil)]
            let oneD: [(key: String, neutral: JSON?)] = [("data_format", .string("channels_last"))]
            return [
                "InputLayer": [("optional", .bool(false))],
                "LayerNormalization": [("rms_scaling", .bool(false))],
                "SimpleRNN": recurrent, "LSTM": recurrent, "GRU": recurrent,
                "ZeroPadding1D": oneD, "Cropping1D": oneD, "UpSampling1D": oneD,
                "Dense": [("lora_alpha", .null)], "Embedding": [("lora_alpha", .null)],
            ]
        }()
        /// Keras 3 options of any layer with their "off" value.
        static let keras3Anywhere: [(key: String, neutral: JSON?)] = [("quantization_config", .null), ("lora_rank", .null)]
        static let renamed: [String: [String: String]] = [
            "InputLayer": ["batch_shape": "batch_input_shape"],
            "LeakyReLU": ["negative_slope": "alpha"],
        ]
        /// Layers whose nested layer configs sit under these keys.
        static let wrapperKeys: Set<String> = ["layer", "backward_layer", "cell"]

        func fail(_ layer: String, _ reason: String) -> KerasError {
            .write(path: path, reason: "layer '\(layer)': \(reason)")
        }

        /// One layer entry (`class_name`, `config`, and for Functional members `name`,
        /// `inbound_nodes`). `legacyTop`: the model itself, written without `name`.
        func layer(_ entry: JSON, legacyTop: Bool = false, shifted: Set<String> = []) throws(KerasError) -> JSON {
            guard let cls = entry["class_name"]?.stringValue, let cfg = entry["config"] else {
                throw .invalidConfig(path: path, reason: "a layer entry has no class_name/config")
            }
            let name = entry["name"]?.stringValue ?? cfg["name"]?.stringValue ?? cls
            guard case .object(let members) = cfg else { throw fail(name, "config is not an object") }
            let drops = (Self.keras3Only[cls] ?? []) + Self.keras3Anywhere
            let renames = Self.renamed[cls] ?? [:]
            // Nested models: their own members' node numbers (tf_keras counts a nested model's
            // calls from 1 when it begins with an InputLayer).
            let inner = Set((cfg["layers"]?.arrayValue ?? []).compactMap { l -> String? in
                guard let c = l["class_name"]?.stringValue, GraphBuilder.modelClasses.contains(c),
                      l["config"]?["layers"]?.arrayValue?.first?["class_name"]?.stringValue == "InputLayer" else { return nil }
                return l["name"]?.stringValue ?? l["config"]?["name"]?.stringValue
            })
            var out: [(String, JSON)] = []
            for m in members {
                if let d = drops.first(where: { $0.key == m.key }) {
                    if let neutral = d.neutral, m.value != neutral {
                        throw fail(name, "\(cls) option '\(m.key)' = \(m.value.serialized()) has no equivalent in the tf_keras/TF.js config")
                    }
                    continue
                }
                let key = renames[m.key] ?? m.key
                switch m.key {
                case "layers":
                    guard let list = m.value.arrayValue else { throw fail(name, "'layers' is not a list") }
                    var converted: [JSON] = []
                    for l in list { converted.append(try layer(l, shifted: inner)) }
                    out.append((key, .array(converted)))
                case "input_layers", "output_layers":
                    out.append((key, try references(m.value, shifted: inner, layer: name)))
                case "activation", "recurrent_activation":
                    out.append((key, try activation(m.value, layer: name, cls: cls, key: m.key)))
                case _ where Self.wrapperKeys.contains(m.key) && m.value["class_name"] != nil:
                    out.append((key, try layer(m.value)))
                default:
                    out.append((key, serialized(m.value)))
                }
            }
            var result: [(String, JSON)] = [("class_name", .string(cls)), ("config", .object(out))]
            if !legacyTop, entry["name"] != nil { result.append(("name", .string(name))) }
            if let nodes = entry["inbound_nodes"]?.arrayValue {
                var converted: [JSON] = []
                for n in nodes { converted.append(try inboundNode(n, shifted: shifted, layer: name)) }
                result.append(("inbound_nodes", .array(converted)))
            }
            return .object(result)
        }

        /// Keras 3's activation names as tf_keras and TF.js know them. Keras 3 redefined
        /// `hard_sigmoid` (relu6(x + 3) / 6, where tf_keras and TF.js compute clip(0.2x + 0.5)),
        /// so it has no name there and is refused.
        func activation(_ j: JSON, layer: String, cls: String, key: String) throws(KerasError) -> JSON {
            switch j.stringValue {
            case "silu"?: return .string("swish")
            case "hard_sigmoid"?:
                throw fail(layer, "\(cls) \(key) 'hard_sigmoid' is Keras 3's relu6(x + 3) / 6, which tf_keras and TF.js define differently (clip(0.2x + 0.5))")
            default: return serialized(j)
            }
        }

        /// The name of the first Lambda layer anywhere in a config, nested models included.
        static func firstLambda(_ j: JSON) -> String? {
            switch j {
            case .array(let a): return a.lazy.compactMap(firstLambda).first
            case .object(let members):
                if j["class_name"]?.stringValue == "Lambda" {
                    return j["name"]?.stringValue ?? j["config"]?["name"]?.stringValue ?? "Lambda"
                }
                return members.lazy.compactMap { firstLambda($0.value) }.first
            default: return nil
            }
        }

        /// A non-layer value: dtype policies become their name, serialized objects (initializers,
        /// regularizers, constraints) lose Keras 3's `module`/`registered_name` and null options.
        func serialized(_ j: JSON) -> JSON {
            switch j {
            case .array(let a): return .array(a.map(serialized))
            case .object(let members):
                if j["class_name"]?.stringValue == "DTypePolicy" || j["class_name"]?.stringValue == "FloatDTypePolicy",
                   let n = j["config"]?["name"]?.stringValue {
                    return .string(n)
                }
                let isSerializedObject = j["class_name"] != nil && j["config"] != nil
                var out: [(String, JSON)] = []
                for m in members where !(isSerializedObject && (m.key == "module" || m.key == "registered_name")) {
                    if isSerializedObject, m.key == "config", case .object(let inner) = m.value {
                        out.append(("config", .object(inner.filter { !$0.value.isNull }.map { ($0.key, serialized($0.value)) })))
                    } else {
                        out.append((m.key, serialized(m.value)))
                    }
                }
                return .object(out)
            default: return j
            }
        }

        /// `[layer, node, tensor]` references (one, or a list) as a list of triples.
        func references(_ j: JSON, shifted: Set<String>, layer: String) throws(KerasError) -> JSON {
            guard let a = j.arrayValue else { throw fail(layer, "input/output layers are not a list") }
            if a.count == 3, a[0].stringValue != nil { return .array([try reference(a, shifted: shifted, layer: layer)]) }
            var out: [JSON] = []
            for e in a {
                guard let r = e.arrayValue else { throw fail(layer, "an input/output layer reference is not a list") }
                out.append(try reference(r, shifted: shifted, layer: layer))
            }
            return .array(out)
        }

        func reference(_ r: [JSON], shifted: Set<String>, layer: String) throws(KerasError) -> JSON {
            guard r.count >= 3, let l = r[0].stringValue, let n = r[1].intValue, let t = r[2].intValue,
                  (0...(1 << 20)).contains(n), (0...(1 << 20)).contains(t) else {
                throw fail(layer, "a layer reference is not [name, node, tensor]")
            }
            return .array([.string(l), .int(shifted.contains(l) ? n + 1 : n), .int(t)])
        }

        /// A Keras 3 call (`args`, `kwargs`) as tf_keras's list of `[layer, node, tensor, kwargs]`.
        func inboundNode(_ node: JSON, shifted: Set<String>, layer: String) throws(KerasError) -> JSON {
            guard let args = node["args"]?.arrayValue else {
                throw fail(layer, "an inbound node is not a Keras 3 call (args/kwargs)")
            }
            guard let first = args.first, args.count == 1 else {
                throw fail(layer, "called with \(args.count) positional arguments; only calls on one tensor or one list of tensors are written")
            }
            var refs: [(String, Int, Int)] = []
            GraphBuilder.collectHistories(first, into: &refs)
            var kwargs: [(String, JSON)] = []
            if case .object(let members)? = node["kwargs"] {
                for m in members {
                    var inside: [(String, Int, Int)] = []
                    GraphBuilder.collectHistories(m.value, into: &inside)
                    if !inside.isEmpty || m.value["class_name"]?.stringValue == "__keras_tensor__" {
                        throw fail(layer, "keyword argument '\(m.key)' is a tensor; such calls are not written")
                    }
                    kwargs.append((m.key, serialized(m.value)))
                }
            }
            var out: [JSON] = []
            for (l, n, t) in refs {
                out.append(.array([.string(l), .int(shifted.contains(l) ? n + 1 : n), .int(t), .object(kwargs)]))
            }
            return .array(out)
        }

        /// Keras 2 configs are written as they are, with the class names tfjs-layers knows
        /// for those TF 1.13-era aliases.
        static func renamingClasses(_ j: JSON) -> JSON {
            let aliases = ["BatchNormalizationV1": "BatchNormalization", "UnifiedGRU": "GRU", "UnifiedLSTM": "LSTM"]
            switch j {
            case .array(let a): return .array(a.map(renamingClasses))
            case .object(let members):
                return .object(members.map { m in
                    if m.key == "class_name", let s = m.value.stringValue, let to = aliases[s] { return JSONMember(key: m.key, value: .string(to)) }
                    return JSONMember(key: m.key, value: renamingClasses(m.value))
                })
            default: return j
            }
        }
    }
}
