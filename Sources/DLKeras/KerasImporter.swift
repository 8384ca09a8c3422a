import DLGraph
import DLTensor

/// One layer of the model config with where its inputs come from.
struct LayerSpec {
    var className: String
    var name: String
    var config: JSON
    /// Per call of the layer (shared layers are called more than once): (layer, node, tensor) inputs.
    var calls: [[(String, Int, Int)]]
}

/// Translates a Keras model config plus weights into a `Graph` that keeps Keras's channels-last
/// signature: convolutions run in the IR's channels-first layout between transposes.
public enum KerasImporter {
    /// Metadata key under which the graph records its Keras layers and variables (JSON).
    public static let layoutKey = "dlkit.keras.layers"

    /// Builds the graph of `file` (which must hold a config), taking weights from `weights` when given.
    public static func graph(from file: KerasFile, weights: KerasFile? = nil) throws(KerasError) -> Graph {
        guard let config = file.config else {
            throw .weightsOnly(path: file.path)
        }
        let w = weights ?? file
        var b = GraphBuilder(path: file.path, weights: w, keras3: (file.kerasVersion ?? "3").hasPrefix("3") || file.kind == .weights || file.kind == .archive)
        return try b.build(config)
    }

    /// Whether this layer class is translated.
    public static func supports(_ className: String) -> Bool { GraphBuilder.supported.contains(className) }
}

/// A value of the graph being built and its shape (nil dims unknown, usually the batch).
struct Value {
    var name: String
    var shape: [Int?]
    var dtype: DType = .float32
    var rank: Int { shape.count }
}

struct GraphBuilder {
    static let supported: Set<String> = [
        "InputLayer", "Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv2D",
        "Conv2DTranspose", "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU",
        "Softmax", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Flatten", "Reshape", "Permute", "RepeatVector", "Dropout",
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
        "ActivityRegularization", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
        "UpSampling1D", "UpSampling2D", "GroupNormalization", "Normalization", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
        "Dot", "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "Rescaling", "Lambda",
    ]

    let path: String
    let weights: KerasFile
    let keras3: Bool
    var nodes: [Node] = []
    var inits: [(String, Tensor)] = []
    var initNames: Set<String> = []
    var records: [KerasLayerRecord] = []
    var counter = 0
    var groupCounts: [String: Int] = [:]
    /// Weights by layer name.
    var byName: [String: KerasLayerWeights] = [:]
    var usedWeights: Set<String> = []

    init(path: String, weights: KerasFile, keras3: Bool) {
        self.path = path
        self.weights = weights
        self.keras3 = keras3
        for l in weights.layers where byName[l.name] == nil { byName[l.name] = l }
    }

    // MARK: building blocks

    mutating func fresh(_ base: String) -> String {
        counter += 1
        return "\(base)#\(counter)"
    }

    mutating func op(_ type: String, _ inputs: [String], _ attrs: [Attribute] = [], name: String, outputs: Int = 1) -> [String] {
        let outs = (0..<outputs).map { _ in fresh(name) }
        nodes.append(Node(name: fresh(name), opType: type, inputs: inputs, outputs: outs, attributes: attrs))
        return outs
    }

    mutating func op1(_ type: String, _ inputs: [String], _ attrs: [Attribute] = [], name: String) -> String {
        op(type, inputs, attrs, name: name)[0]
    }

    mutating func constant(_ name: String, _ t: Tensor) -> String {
        var n = name
        while initNames.contains(n) { n = fresh(name) }
        initNames.insert(n)
        inits.append((n, t))
        return n
    }

    mutating func ints(_ name: String, _ v: [Int]) -> String {
        constant(name, Tensor(shape: [v.count], scalars: v.map { Int64($0) }))
    }

    mutating func transpose(_ v: Value, _ perm: [Int], name: String) -> Value {
        // A transpose undoing the one that produced `v` reads that one's input instead.
        if let n = nodes.last(where: { $0.outputs.first == v.name }), n.opType == "Transpose",
           let p = try? n.ints("perm"), p.count == perm.count, perm.enumerated().allSatisfy({ p[$0.element] == $0.offset }),
           let src = sourceShapes[n.inputs[0]] {
            return Value(name: n.inputs[0], shape: src, dtype: v.dtype)
        }
        let out = op1("Transpose", [v.name], [Attribute(name: "perm", value: .ints(perm))], name: name)
        let r = Value(name: out, shape: perm.map { v.shape[$0] }, dtype: v.dtype)
        sourceShapes[v.name] = v.shape
        return r
    }

    var sourceShapes: [String: [Int?]] = [:]

    func fail(_ layer: LayerSpec, _ reason: String) -> KerasError {
        .invalidConfig(path: path, reason: "layer '\(layer.name)' (\(layer.className)): \(reason)")
    }

    // MARK: model structure

    mutating func build(_ model: JSON) throws(KerasError) -> Graph {
        guard let cls = model["class_name"]?.stringValue, let cfg = model["config"] else {
            throw .invalidConfig(path: path, reason: "no class_name/config at the top")
        }
        let specs = try layers(of: model)
        let unsupported = Self.unsupportedLayers(specs)
        if !unsupported.isEmpty { throw .unsupportedLayers(path: path, layers: unsupported) }
        var values: [String: [Value]] = [:]   // "layer:node" -> outputs
        var graphInputs: [ValueInfo] = []
        var graphOutputs: [ValueInfo] = []
        func key(_ l: String, _ n: Int) -> String { "\(l):\(n)" }

        if cls == "Sequential" {
            var current: Value? = nil
            var first = true
            for s in specs {
                if s.className == "InputLayer" || first, current == nil {
                    let shape = try inputShape(s)
                    let dtype = Self.dtype(s.config["dtype"]) ?? .float32
                    let name = s.className == "InputLayer" ? s.name : "input"
                    graphInputs.append(ValueInfo(name: name, type: TensorType(dtype: dtype, dims: shape.map { $0.map { .fixed($0) } ?? .symbolic("batch") })))
                    current = Value(name: name, shape: shape, dtype: dtype)
                    if s.className == "InputLayer" {
                        records.append(KerasLayerRecord(name: s.name, className: s.className, keras3Group: group3(s.className), variables: []))
                        continue
                    }
                }
                first = false
                guard let x = current else { throw fail(s, "no input") }
                current = try emit(s, [x])[0]
            }
            guard let y = current else { throw .invalidConfig(path: path, reason: "the Sequential model has no layers") }
            let outName = specs.last?.name ?? "output"
            let o = op1("Identity", [y.name], name: outName)
            rename(o, to: outName)
            graphOutputs.append(ValueInfo(name: outName, type: TensorType(dtype: y.dtype, dims: y.shape.map { $0.map { .fixed($0) } ?? .symbolic("batch") })))
        } else {
            // Functional: layers in config order; each call's inputs are outputs of earlier calls.
            var pending = specs
            var progress = true
            var done: [String] = []
            var recorded: Set<String> = []
            while !pending.isEmpty && progress {
                progress = false
                var rest: [LayerSpec] = []
                for s in pending {
                    if s.className == "InputLayer" {
                        let shape = try inputShape(s)
                        let dtype = Self.dtype(s.config["dtype"]) ?? .float32
                        graphInputs.append(ValueInfo(name: s.name, type: TensorType(dtype: dtype, dims: shape.map { $0.map { .fixed($0) } ?? .symbolic("batch") })))
                        values[key(s.name, 0)] = [Value(name: s.name, shape: shape, dtype: dtype)]
                        records.append(KerasLayerRecord(name: s.name, className: s.className, keras3Group: group3(s.className), variables: []))
                        recorded.insert(s.name)
                        done.append(s.name)
                        progress = true
                        continue
                    }
                    let ready = s.calls.allSatisfy { call in call.allSatisfy { values[key($0.0, $0.1)] != nil } }
                    guard ready else { rest.append(s); continue }
                    for (ci, call) in s.calls.enumerated() {
                        var xs: [Value] = []
                        for (l, n, t) in call {
                            guard let outs = values[key(l, n)], t < outs.count else { throw fail(s, "input \(l)[\(n)][\(t)] does not exist") }
                            xs.append(outs[t])
                        }
                        if ci > 0 { sharedCall = true }
                        values[key(s.name, ci)] = try emit(s, xs)
                        sharedCall = false
                    }
                    done.append(s.name)
                    progress = true
                }
                pending = rest
            }
            if !pending.isEmpty {
                throw .invalidConfig(path: path, reason: "layers whose inputs never appear: \(pending.map(\.name).joined(separator: ", "))")
            }
            for (l, n, t) in try Self.refs(cfg["output_layers"], path: path) {
                guard let outs = values[key(l, n)], t < outs.count else {
                    throw .invalidConfig(path: path, reason: "output \(l)[\(n)][\(t)] does not exist")
                }
                let y = outs[t]
                var outName = l
                if graphOutputs.contains(where: { $0.name == outName }) { outName = "\(l)_\(n)_\(t)" }
                let o = op1("Identity", [y.name], name: outName)
                rename(o, to: outName)
                graphOutputs.append(ValueInfo(name: outName, type: TensorType(dtype: y.dtype, dims: y.shape.map { $0.map { .fixed($0) } ?? .symbolic("batch") })))
            }
            // Order of declared inputs.
            let declared = try Self.refs(cfg["input_layers"], path: path).map(\.0)
            graphInputs.sort { (declared.firstIndex(of: $0.name) ?? 99) < (declared.firstIndex(of: $1.name) ?? 99) }
        }
        // Every weighted layer of the file must have been used.
        let unused = weights.layers.filter { !$0.weights.isEmpty && !usedWeights.contains($0.name) }.map(\.name)
        if !unused.isEmpty {
            throw .weights(path: weights.path, reason: "weights of layers the config does not have: \(unused.joined(separator: ", "))")
        }
        var g = Graph(name: cfg["name"]?.stringValue ?? "keras", inputs: graphInputs, outputs: graphOutputs, nodes: nodes,
                      initializers: NamedTensors(inits))
        g.metadata.producerName = "dlkit-keras"
        g.metadata.opsetImports = [(domain: "", version: 21)]
        g.metadata.irVersion = 10
        g.metadata.metadataProps.append((Self.layoutKeyName, Self.encode(records)))
        return g
    }

    static var layoutKeyName: String { KerasImporter.layoutKey }

    var sharedCall = false
    var varCache: [String: String] = [:]

    mutating func rename(_ value: String, to name: String) {
        for i in nodes.indices {
            for j in nodes[i].outputs.indices where nodes[i].outputs[j] == value { nodes[i].outputs[j] = name }
            for j in nodes[i].inputs.indices where nodes[i].inputs[j] == value { nodes[i].inputs[j] = name }
        }
    }

    func layers(of model: JSON) throws(KerasError) -> [LayerSpec] {
        guard let list = model["config"]?["layers"]?.arrayValue ?? model["config"]?.arrayValue else {
            throw .invalidConfig(path: path, reason: "the model config has no layers list")
        }
        var out: [LayerSpec] = []
        for (i, l) in list.enumerated() {
            guard let cls = l["class_name"]?.stringValue, let cfg = l["config"] else {
                throw .invalidConfig(path: path, reason: "layer \(i) has no class_name/config")
            }
            let name = l["name"]?.stringValue ?? cfg["name"]?.stringValue ?? "layer_\(i)"
            var calls: [[(String, Int, Int)]] = []
            for node in l["inbound_nodes"]?.arrayValue ?? [] {
                var refs: [(String, Int, Int)] = []
                if let args = node["args"]?.arrayValue {
                    Self.collectHistories(args.first ?? .null, into: &refs)
                } else if let arr = node.arrayValue {
                    for r in arr {
                        if let parts = r.arrayValue, parts.count >= 3, let ln = parts[0].stringValue,
                           let n = parts[1].intValue, let t = parts[2].intValue {
                            refs.append((ln, n, t))
                        }
                    }
                }
                calls.append(refs)
            }
            out.append(LayerSpec(className: cls, name: name, config: cfg, calls: calls))
        }
        return out
    }

    static func collectHistories(_ j: JSON, into refs: inout [(String, Int, Int)]) {
        if let a = j.arrayValue { for e in a { collectHistories(e, into: &refs) }; return }
        if let h = j["config"]?["keras_history"]?.arrayValue, h.count >= 3, let l = h[0].stringValue,
           let n = h[1].intValue, let t = h[2].intValue {
            refs.append((l, n, t))
        }
    }

    static func refs(_ j: JSON?, path: String) throws(KerasError) -> [(String, Int, Int)] {
        guard let a = j?.arrayValue else { return [] }
        if a.count == 3, let l = a[0].stringValue, let n = a[1].intValue, let t = a[2].intValue { return [(l, n, t)] }
        var out: [(String, Int, Int)] = []
        for e in a {
            guard let p = e.arrayValue, p.count >= 3, let l = p[0].stringValue, let n = p[1].intValue, let t = p[2].intValue else {
                throw .invalidConfig(path: path, reason: "bad input/output layer reference")
            }
            out.append((l, n, t))
        }
        return out
    }

    static func unsupportedLayers(_ specs: [LayerSpec]) -> [String] {
        var out: [String] = []
        for s in specs {
            if !supported.contains(s.className) { out.append("\(s.className) '\(s.name)'"); continue }
            if s.className == "Bidirectional" || s.className == "TimeDistributed",
               let inner = s.config["layer"]?["class_name"]?.stringValue, !supported.contains(inner) {
                out.append("\(inner) '\(s.name)' (inside \(s.className))")
            }
            if s.className == "Lambda", lambdaActivation(s.config) == nil {
                out.append("Lambda '\(s.name)' (only a Lambda whose function is a known activation is supported)")
            }
        }
        return out
    }

    func inputShape(_ s: LayerSpec) throws(KerasError) -> [Int?] {
        let c = s.config
        guard let dims = (c["batch_shape"] ?? c["batch_input_shape"])?.arrayValue else {
            throw fail(s, "no batch_shape / batch_input_shape")
        }
        var out: [Int?] = []
        for d in dims {
            if d.isNull { out.append(nil) } else if let v = d.intValue, v >= 0 { out.append(v) } else { throw fail(s, "bad input dimension") }
        }
        return out
    }

    static func dtype(_ j: JSON?) -> DType? {
        var name = j?.stringValue
        if name == nil { name = j?["config"]?["name"]?.stringValue }
        switch name {
        case "float32": return .float32
        case "float64": return .float64
        case "float16": return .float16
        case "int32": return .int32
        case "int64": return .int64
        case "uint8": return .uint8
        case "bool": return .bool
        default: return nil
        }
    }

    /// Keras 3 group name: the class in snake_case, suffixed `_n` for the n-th repeat.
    mutating func group3(_ className: String) -> String {
        let base = Self.snakeCase(className)
        let n = groupCounts[base, default: 0]
        groupCounts[base] = n + 1
        return n == 0 ? base : "\(base)_\(n)"
    }

    static func snakeCase(_ s: String) -> String {
        let c = Array(s)
        var out = ""
        for i in c.indices {
            let ch = c[i]
            if ch.isUppercase, i > 0 {
                let prev = c[i - 1]
                let nextLower = i + 1 < c.count && c[i + 1].isLowercase
                if prev.isLowercase || (nextLower && prev != "_") { out.append("_") }
            }
            out.append(ch)
        }
        return out.lowercased()
    }

    static func encode(_ records: [KerasLayerRecord]) -> String {
        func ints(_ v: [Int]?) -> JSON { v.map { .array($0.map { .number(String($0)) }) } ?? .null }
        let arr: [JSON] = records.map { r in
            .object([
                JSONMember(key: "name", value: .string(r.name)),
                JSONMember(key: "class", value: .string(r.className)),
                JSONMember(key: "group", value: .string(r.keras3Group)),
                JSONMember(key: "vars", value: .array(r.variables.map { v in
                    .object([
                        JSONMember(key: "name", value: .string(v.name)),
                        JSONMember(key: "keras3", value: .string(v.keras3Path)),
                        JSONMember(key: "legacy", value: .string(v.legacyName)),
                        JSONMember(key: "shape", value: ints(v.shape)),
                        JSONMember(key: "init", value: .string(v.initializer)),
                        JSONMember(key: "gates", value: ints(v.layout.gates)),
                        JSONMember(key: "perm", value: ints(v.layout.perm)),
                        JSONMember(key: "ir_shape", value: ints(v.layout.irShape)),
                    ])
                })),
            ])
        }
        return JSON.array(arr).serialized()
    }
}
