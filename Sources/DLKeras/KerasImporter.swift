import DLGraph
import DLSupport
import DLTensor

/// One layer of the model config with where its inputs come from.
struct LayerSpec {
    var className: String
    var name: String
    var config: JSON
    /// Per call of the layer (shared layers are called more than once): (layer, node, tensor) inputs.
    var calls: [[(String, Int, Int)]]
    /// The inbound nodes are in tf_keras's list format (`[[layer, node, tensor, kwargs], ...]`),
    /// not Keras 3's `args`/`kwargs` objects.
    var legacyNodes = false
    /// Keyword arguments of the layer's calls (`use_causal_mask`, `attention_mask`, `training`, ...).
    var options: [String: JSON] = [:]
}

/// Translates a Keras model config plus weights into a `Graph` that keeps Keras's channels-last
/// signature: convolutions run in the IR's channels-first layout between transposes.
public enum KerasImporter {
    /// Metadata key under which the graph records its Keras layers and variables (JSON).
    public static let layoutKey = "dlkit.keras.layers"
    /// Metadata key under which the graph records the model config it was built from, as
    /// `{"keras_version": ..., "backend": ..., "model_config": ...}` (what a TF.js layers-model needs).
    public static let configKey = "dlkit.keras.config"

    /// Builds the graph of `file` (which must hold a config), taking weights from `weights` when given.
    public static func graph(from file: KerasFile, weights: KerasFile? = nil) throws(KerasError) -> Graph {
        guard let config = file.config else {
            throw .weightsOnly(path: file.path)
        }
        let w = weights ?? file
        let keras3 = (file.kerasVersion ?? "3").hasPrefix("3") || file.kind == .weights || file.kind == .archive
        var b = GraphBuilder(path: file.path, weights: w, keras3: keras3)
        var g = try b.build(config)
        let record = JSON.object([("keras_version", .string(file.kerasVersion ?? (keras3 ? "3" : "2"))),
                                  ("backend", .string(file.backend ?? "tensorflow")), ("model_config", config)])
        g.metadata.metadataProps.append((configKey, record.serialized()))
        return g
    }

    /// Whether this layer class is translated.
    public static func supports(_ className: String) -> Bool { GraphBuilder.supported.contains(className) }
    /// Every layer class the importer knows (the Keras grammar fuzz target draws from it).
    public static var supportedClasses: [String] { GraphBuilder.supported.sorted() }
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
        "Functional", "Sequential", "Model", "MultiHeadAttention",
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
    /// Weights by layer name (of the model being emitted: the top one or a nested one).
    var byName: [String: KerasLayerWeights] = [:]
    var scopeLayers: [KerasLayerWeights] = []
    var usedWeights: Set<String> = []
    /// Names of the nested models being emitted, outermost first.
    var scopeNames: [String] = []
    /// The Keras 3 group of the nested model being emitted plus `/layers/` ("" at the top).
    var groupPrefix = ""
    /// False inside a nested model whose config says `trainable: false`.
    var scopeTrainable = true

    init(path: String, weights: KerasFile, keras3: Bool) {
        self.path = path
        self.weights = weights
        self.keras3 = keras3
        setScope(weights.layers)
    }

    mutating func setScope(_ layers: [KerasLayerWeights]) {
        scopeLayers = layers
        byName = [:]
        for l in layers where byName[l.name] == nil { byName[l.name] = l }
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
        let unsupported = try unsupportedLayers(specs)
        if !unsupported.isEmpty { throw .unsupportedLayers(path: path, layers: unsupported) }
        var graphInputs: [ValueInfo] = []
        var graphOutputs: [ValueInfo] = []
        // Keras's None dims: the first is the batch, shared by every input and output; any other
        // (a variable length, height or width) is its own symbol, or an input of shape
        // (None, 40, None, 1) would promise that its width always equals the batch size.
        func info(_ name: String, _ v: Value) -> ValueInfo {
            let dims: [Dim] = v.shape.enumerated().map { axis, d in
                d.map { .fixed($0) } ?? .symbolic(axis == 0 ? "batch" : "\(name)_dim\(axis)")
            }
            return ValueInfo(name: name, type: TensorType(dtype: v.dtype, dims: dims))
        }
        let (ins, outs) = try body(cls, cfg, specs, given: nil)
        for v in ins { graphInputs.append(info(v.name, v)) }
        for (name, y) in outs {
            var outName = name
            if graphOutputs.contains(where: { $0.name == outName }) { outName = "\(name)_\(graphOutputs.count)" }
            let o = op1("Identity", [y.name], name: outName)
            rename(o, to: outName)
            graphOutputs.append(info(outName, y))
        }
        try checkAllWeightsUsed(weights.path)
        var g = Graph(name: cfg["name"]?.stringValue ?? "keras", inputs: graphInputs, outputs: graphOutputs, nodes: nodes,
                      initializers: NamedTensors(inits))
        g.metadata.producerName = "dlkit-keras"
        g.metadata.opsetImports = [(domain: "", version: 21)]
        g.metadata.irVersion = 10
        g.metadata.metadataProps.append((Self.layoutKeyName, Self.encode(records)))
        return g
    }

    /// Every weighted layer of the current scope's weights must have been used.
    func checkAllWeightsUsed(_ file: String) throws(KerasError) {
        let unused = scopeLayers.filter { ($0.weights.isEmpty == false || !$0.sublayers.isEmpty) && !usedWeights.contains($0.name) }
            .filter { !$0.weights.isEmpty || $0.sublayers.contains(where: Self.hasWeights) }.map(\.name)
        if !unused.isEmpty {
            let scope = scopeNames.isEmpty ? "" : " (inside \(scopeNames.joined(separator: "/")))"
            throw .weights(path: file, reason: "weights of layers the config does not have\(scope): \(unused.joined(separator: ", "))")
        }
    }

    static func hasWeights(_ l: KerasLayerWeights) -> Bool { !l.weights.isEmpty || l.sublayers.contains(where: hasWeights) }

    /// Emits the layers of a Sequential or Functional model. `given` are the values a nested
    /// model is called on; without them (the top model) the InputLayers become graph inputs.
    /// Returns the model's inputs and its outputs (named as Keras names them).
    mutating func body(_ cls: String, _ cfg: JSON, _ specs: [LayerSpec], given: [Value]?) throws(KerasError) -> ([Value], [(String, Value)]) {
        var inputs: [Value] = []
        var outputs: [(String, Value)] = []
        func key(_ l: String, _ n: Int) -> String { "\(l):\(n)" }
        let nested = given != nil

        if cls == "Sequential" {
            var current: Value? = nil
            var first = true
            for s in specs {
                if nested, s.className == "InputLayer" { continue }
                if let g = given, current == nil {
                    guard g.count == 1 else { throw .invalidConfig(path: path, reason: "Sequential model '\(cfg["name"]?.stringValue ?? "?")' called on \(g.count) inputs") }
                    current = g[0]
                    inputs = g
                }
                if s.className == "InputLayer" || first, current == nil {
                    let shape = try inputShape(s)
                    let dtype = Self.dtype(s.config["dtype"]) ?? .float32
                    let name = s.className == "InputLayer" ? s.name : "input"
                    current = Value(name: name, shape: shape, dtype: dtype)
                    inputs.append(Value(name: name, shape: shape, dtype: dtype))
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
            outputs.append((specs.last?.name ?? "output", y))
            return (inputs, outputs)
        }
        // Functional: layers in config order; each call's inputs are outputs of earlier calls.
        var values: [String: [Value]] = [:]   // "layer:node" -> outputs
        let declared = try refs(cfg["input_layers"], specs)
        var pending = specs
        var progress = true
        while !pending.isEmpty && progress {
            progress = false
            var rest: [LayerSpec] = []
            for s in pending {
                if s.className == "InputLayer" {
                    let v: Value
                    if let g = given {
                        guard let i = declared.firstIndex(where: { $0.0 == s.name }), i < g.count else {
                            throw fail(s, "the nested model is called on \(g.count) inputs, this input is not among them")
                        }
                        v = g[i]
                    } else {
                        let shape = try inputShape(s)
                        v = Value(name: s.name, shape: shape, dtype: Self.dtype(s.config["dtype"]) ?? .float32)
                    }
                    inputs.append(v)
                    values[key(s.name, 0)] = [v]
                    if !sharedCall {
                        records.append(KerasLayerRecord(name: s.name, className: s.className, keras3Group: group3(s.className), variables: [],
                                                        scope: scopeNames))
                    }
                    progress = true
                    continue
                }
                let ready = s.calls.allSatisfy { call in call.allSatisfy { values[key($0.0, $0.1)] != nil } }
                guard ready else { rest.append(s); continue }
                let outer = sharedCall
                for (ci, call) in s.calls.enumerated() {
                    var xs: [Value] = []
                    for (l, n, t) in call {
                        guard let outs = values[key(l, n)], t >= 0, t < outs.count else { throw fail(s, "input \(l)[\(n)][\(t)] does not exist") }
                        xs.append(outs[t])
                    }
                    sharedCall = outer || ci > 0
                    values[key(s.name, ci)] = try emit(s, xs)
                    sharedCall = outer
                }
                progress = true
            }
            pending = rest
        }
        if !pending.isEmpty {
            throw .invalidConfig(path: path, reason: "layers whose inputs never appear: \(pending.map(\.name).joined(separator: ", "))")
        }
        for (l, n, t) in try refs(cfg["output_layers"], specs) {
            guard let outs = values[key(l, n)], t >= 0, t < outs.count else {
                throw .invalidConfig(path: path, reason: "output \(l)[\(n)][\(t)] does not exist")
            }
            outputs.append((outputs.contains(where: { $0.0 == l }) ? "\(l)_\(n)_\(t)" : l, outs[t]))
        }
        // Order of declared inputs.
        let order = declared.map(\.0)
        inputs.sort { (order.firstIndex(of: $0.name) ?? 99) < (order.firstIndex(of: $1.name) ?? 99) }
        return (inputs, outputs)
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
            var legacy = false
            var options: [String: JSON] = [:]
            // Attention layers take their value and key as further arguments (Keras 3) or keyword
            // arguments (both): inputs are [query, value, key].
            let attention = cls == "MultiHeadAttention"
            for node in l["inbound_nodes"]?.arrayValue ?? [] {
                var refs: [(String, Int, Int)] = []
                if let args = node["args"]?.arrayValue {
                    for a in attention ? args : Array(args.prefix(1)) { Self.collectHistories(a, into: &refs) }
                    if case .object(let members)? = node["kwargs"] {
                        for m in members { options[m.key] = m.value }
                        if attention { for k in ["value", "key"] { if let v = node["kwargs"]?[k] { Self.collectHistories(v, into: &refs) } } }
                    }
                } else if let arr = node.arrayValue {
                    legacy = true
                    for r in arr {
                        if let parts = r.arrayValue, parts.count >= 3, let ln = parts[0].stringValue,
                           let n = parts[1].intValue, let t = parts[2].intValue {
                            refs.append((ln, n, t))
                            if parts.count >= 4, case .object(let members) = parts[3] {
                                for m in members { options[m.key] = m.value }
                                for k in ["value", "key"] where attention {
                                    if let p = parts[3][k]?.arrayValue, p.count >= 3, let a = p[0].stringValue, let b = p[1].intValue, let c = p[2].intValue {
                                        refs.append((a, b, c))
                                    }
                                }
                            }
                        }
                    }
                }
                calls.append(refs)
            }
            out.append(LayerSpec(className: cls, name: name, config: cfg, calls: calls, legacyNodes: legacy, options: options))
        }
        // (&-: a node index of Int.min from a hostile file stays unfound instead of trapping.)
        // tf_keras numbers the calls of a nested model from 1 when the model begins with an
        // InputLayer (its node 0 is the call on that input, not saved): make them call indices.
        let skip = Set(out.filter { Self.skipsFirstNode($0) }.map(\.name))
        if !skip.isEmpty {
            for i in out.indices where out[i].legacyNodes {
                out[i].calls = out[i].calls.map { call in call.map { skip.contains($0.0) ? ($0.0, $0.1 &- 1, $0.2) : $0 } }
            }
        }
        return out
    }

    static let modelClasses: Set<String> = ["Functional", "Sequential", "Model"]

    static func skipsFirstNode(_ s: LayerSpec) -> Bool {
        modelClasses.contains(s.className) && s.config["layers"]?.arrayValue?.first?["class_name"]?.stringValue == "InputLayer"
    }

    static func collectHistories(_ j: JSON, into refs: inout [(String, Int, Int)]) {
        if let a = j.arrayValue { for e in a { collectHistories(e, into: &refs) }; return }
        if let h = j["config"]?["keras_history"]?.arrayValue, h.count >= 3, let l = h[0].stringValue,
           let n = h[1].intValue, let t = h[2].intValue {
            refs.append((l, n, t))
        }
    }

    /// Input or output layer references of a model, with tf_keras's nested-model node numbers
    /// made call indices as in `layers(of:)`.
    func refs(_ j: JSON?, _ specs: [LayerSpec]) throws(KerasError) -> [(String, Int, Int)] {
        let raw = try Self.refs(j, path: path)
        guard specs.contains(where: \.legacyNodes) else { return raw }
        let skip = Set(specs.filter { Self.skipsFirstNode($0) }.map(\.name))
        return raw.map { skip.contains($0.0) ? ($0.0, $0.1 - 1, $0.2) : $0 }
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

    func unsupportedLayers(_ specs: [LayerSpec], inside: String = "") throws(KerasError) -> [String] {
        var out: [String] = []
        for s in specs {
            if Self.modelClasses.contains(s.className) {
                let where_ = inside.isEmpty ? s.name : "\(inside)/\(s.name)"
                out += try unsupportedLayers(try layers(of: Self.modelJSON(s)), inside: where_)
                continue
            }
            let suffix = inside.isEmpty ? "" : " (in nested model '\(inside)')"
            let before = out.count
            defer { for i in before..<out.count { out[i] += suffix } }
            if !Self.supported.contains(s.className) { out.append("\(s.className) '\(s.name)'"); continue }
            if s.className == "Bidirectional" || s.className == "TimeDistributed",
               let inner = s.config["layer"]?["class_name"]?.stringValue, !Self.supported.contains(inner) {
                out.append("\(inner) '\(s.name)' (inside \(s.className))")
            }
            if s.className == "Lambda", Self.lambdaActivation(s.config) == nil {
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
            if d.isNull { out.append(nil) } else if let v = d.intValue, v >= 0, v <= GraphBuilder.maxConfigInt { out.append(v) } else {
                throw fail(s, "input dimension \(d.serialized()) is not null or a size from 0 to 2^31")
            }
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

    /// Keras 3 group name: the class in snake_case, suffixed `_n` for the n-th repeat within the
    /// model (counted per nested model), below the enclosing nested models' groups.
    mutating func group3(_ className: String) -> String {
        let base = Self.snakeCase(className == "Model" ? "Functional" : className)
        let n = groupCounts[base, default: 0]
        groupCounts[base] = n + 1
        return groupPrefix + (n == 0 ? base : "\(base)_\(n)")
    }

    /// A nested model's layer entry as a model JSON (`class_name` and `config`).
    static func modelJSON(_ s: LayerSpec) -> JSON {
        .object([JSONMember(key: "class_name", value: .string(s.className)), JSONMember(key: "config", value: s.config)])
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
                JSONMember(key: "scope", value: .array(r.scope.map { .string($0) })),
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
                        JSONMember(key: "trainable", value: .bool(v.trainable)),
                    ])
                })),
            ])
        }
        return JSON.array(arr).serialized()
    }
}
