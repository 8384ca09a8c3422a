import DLGraph
import DLSupport
import DLTensor

extension GraphBuilder {
    // MARK: weights

    /// The stored weights of layer `s` (empty when the layer has none in the file).
    mutating func stored(_ s: LayerSpec) -> [Tensor] {
        guard let l = byName[s.name] else { return [] }
        usedWeights.insert(s.name)
        return l.weights.map(\.tensor)
    }

    /// Turns weight `index` of `ws` into an initializer after checking its shape, and records how.
    mutating func variable(_ s: LayerSpec, _ ws: [Tensor], _ index: Int, name: String, keras3Path: String, legacy: String,
                           shape: [Int], layout: WeightLayout = .identity, record: inout KerasLayerRecord) throws(KerasError) -> String {
        guard index < ws.count else {
            throw .weights(path: weights.path, reason: "layer '\(s.name)' (\(s.className)): \(ws.count) weights stored, \(name) (number \(index + 1)) is missing")
        }
        var t = ws[index]
        guard t.shape == shape else {
            throw .weights(path: weights.path, reason: "layer '\(s.name)' (\(s.className)): \(name) has shape \(t.shape), the config gives \(shape)")
        }
        let cacheKey = (scopeNames + [s.name]).joined(separator: "/") + "#" + keras3Path
        if let cached = varCache[cacheKey] { return cached }
        if t.dtype != .float32 && t.dtype.isFloatingPoint { t = t.converted(to: .float32) }
        let ir: Tensor
        do { ir = try layout.forward(t) } catch {
            throw .weights(path: weights.path, reason: "layer '\(s.name)': \(name): \(error)")
        }
        let initName = constant((scopeNames + [s.name]).joined(separator: "/") + "/" + legacy.split(separator: "/").dropFirst().joined(separator: "/"), ir)
        varCache[cacheKey] = initName
        let statistic = ["moving_mean", "moving_variance"].contains(name) || s.className == "Normalization"
        let trainable = scopeTrainable && bool(s, "trainable", true) && !statistic
        record.variables.append(KerasVariable(name: name, keras3Path: keras3Path, legacyName: legacy, shape: shape,
                                              initializer: initName, layout: layout, trainable: trainable))
        return initName
    }

    func expectCount(_ s: LayerSpec, _ ws: [Tensor], _ n: Int) throws(KerasError) {
        guard ws.count == n else {
            throw .weights(path: weights.path, reason: "layer '\(s.name)' (\(s.className)): \(ws.count) weights stored, the config gives \(n)")
        }
    }

    // MARK: config helpers

    /// The largest magnitude a config integer may have: shape arithmetic on two of them cannot overflow.
    static let maxConfigInt = 1 << 31
    /// The largest kernel, stride, dilation or pool size: window arithmetic stays far from overflow.
    static let maxWindow = 1 << 20

    func int(_ s: LayerSpec, _ key: String, _ def: Int? = nil) throws(KerasError) -> Int {
        var v: Int? = s.config[key]?.intValue
        if v == nil, let a = s.config[key]?.arrayValue, a.count == 1 { v = a[0].intValue }
        if let v {
            guard v >= -Self.maxConfigInt, v <= Self.maxConfigInt else { throw fail(s, "'\(key)' is \(v), beyond ±2^31") }
            return v
        }
        if let d = def { return d }
        throw fail(s, "missing integer '\(key)'")
    }

    /// A size (units, filters, a repeat count, ...): an integer from 1 to `max`.
    func count(_ s: LayerSpec, _ key: String, _ def: Int? = nil, max: Int = maxConfigInt) throws(KerasError) -> Int {
        let v = try int(s, key, def)
        guard v >= 1, v <= max else { throw fail(s, "'\(key)' is \(v); it must be 1 to \(max)") }
        return v
    }

    func tuple(_ s: LayerSpec, _ key: String, _ n: Int, _ def: [Int]? = nil) throws(KerasError) -> [Int] {
        let j = s.config[key]
        var out: [Int]? = nil
        if let v = j?.intValue { out = [Int](repeating: v, count: n) }
        if out == nil, let a = j?.arrayValue {
            let v = a.compactMap(\.intValue)
            if v.count == n, v.count == a.count { out = v }
            if v.count == 1, a.count == 1 { out = [Int](repeating: v[0], count: n) }
        }
        if let out {
            guard out.allSatisfy({ $0 >= -Self.maxConfigInt && $0 <= Self.maxConfigInt }) else { throw fail(s, "'\(key)' \(out) is beyond ±2^31") }
            return out
        }
        if let d = def { return d }
        throw fail(s, "'\(key)' must be \(n) integers")
    }

    /// Window sizes (kernel, strides, dilation, pool): `n` integers from 1 to `maxWindow`.
    func window(_ s: LayerSpec, _ key: String, _ n: Int, _ def: [Int]? = nil) throws(KerasError) -> [Int] {
        let v = try tuple(s, key, n, def)
        guard v.allSatisfy({ $0 >= 1 && $0 <= Self.maxWindow }) else { throw fail(s, "'\(key)' \(v) must be \(n) sizes from 1 to \(Self.maxWindow)") }
        return v
    }

    /// The product of known dimensions, nil when one is unknown or the product overflows.
    static func product(_ dims: some Sequence<Int?>) -> Int? {
        var p = 1
        for d in dims {
            guard let d else { return nil }
            let (m, o) = p.multipliedReportingOverflow(by: d)
            guard !o else { return nil }
            p = m
        }
        return p
    }

    /// A constant of `count` copies of `value` (a filler gamma/beta): refused past 2^24 elements,
    /// so a config claiming a huge dimension cannot make the importer allocate gigabytes.
    func fillerCount(_ s: LayerSpec, _ count: Int) throws(KerasError) -> Int {
        guard count >= 0, count <= 1 << 24 else { throw fail(s, "\(count) channels are more than a filler constant may hold (2^24)") }
        return count
    }

    /// The input ranks (batch axis included) a layer class takes, for the builders that index
    /// the input's shape; nil for layers that take any rank.
    static func inputRanks(_ cls: String) -> ClosedRange<Int>? {
        switch cls {
        case "Conv1D", "SeparableConv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
             "ZeroPadding1D", "Cropping1D", "UpSampling1D", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "MultiHeadAttention":
            3...3
        case "Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose", "MaxPooling2D", "AveragePooling2D",
             "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D":
            4...4
        case "Conv3D", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D", "ZeroPadding3D":
            5...5
        case "TimeDistributed": 3...8
        case "RepeatVector": 2...2
        case "Dot": 2...3
        case "Dense", "BatchNormalization", "LayerNormalization", "GroupNormalization": 2...8
        case "Flatten", "Reshape", "Permute", "Embedding", "Normalization", "Softmax", "Concatenate": 1...8
        default: nil
        }
    }

    func bool(_ s: LayerSpec, _ key: String, _ def: Bool) -> Bool { s.config[key]?.boolValue ?? def }
    func double(_ s: LayerSpec, _ key: String, _ def: Double) -> Double { s.config[key]?.doubleValue ?? def }
    func string(_ s: LayerSpec, _ key: String, _ def: String) -> String { s.config[key]?.stringValue ?? def }

    func channelsLast(_ s: LayerSpec) throws(KerasError) -> Bool {
        let f = string(s, "data_format", "channels_last")
        guard f == "channels_last" || f == "channels_first" else { throw fail(s, "unknown data_format '\(f)'") }
        return f == "channels_last"
    }

    // MARK: dispatch

    mutating func emit(_ s: LayerSpec, _ xs: [Value]) throws(KerasError) -> [Value] {
        var rec = KerasLayerRecord(name: s.name, className: s.className, keras3Group: sharedCall ? "" : group3(s.className), variables: [],
                                   scope: scopeNames)
        if Self.modelClasses.contains(s.className) {
            let at = records.count
            let out = try nestedModel(s, xs, group: rec.keras3Group)
            if !sharedCall { records.insert(rec, at: at) }
            return out
        }
        let out = try emitLayer(s, xs, &rec)
        if !sharedCall { records.append(rec) }
        return out
    }

    /// A Functional or Sequential model used as a layer: its layers are emitted inline on `xs`,
    /// with its weights (Keras 3: the groups below `<model>/layers`; legacy: its flat list split
    /// by layer name) and its own group counters.
    mutating func nestedModel(_ s: LayerSpec, _ xs: [Value], group: String) throws(KerasError) -> [Value] {
        let specs = try layers(of: Self.modelJSON(s))
        var inner: [KerasLayerWeights] = []
        if let stored = byName[s.name] {
            usedWeights.insert(s.name)
            inner = stored.sublayers
            if inner.isEmpty, !stored.weights.isEmpty { inner = try splitLegacy(stored, model: s.name, specs: specs) }
        }
        let saved = (scopeLayers, usedWeights, groupCounts, groupPrefix, scopeNames, scopeTrainable)
        setScope(inner)
        usedWeights = []
        groupCounts = [:]
        groupPrefix = sharedCall ? "" : group + "/layers/"
        scopeNames.append(s.name)
        scopeTrainable = scopeTrainable && bool(s, "trainable", true)
        let (_, outs) = try body(s.className == "Sequential" ? "Sequential" : "Functional", s.config, specs, given: xs)
        if !sharedCall { try checkAllWeightsUsed(weights.path) }
        setScope(saved.0)
        (usedWeights, groupCounts, groupPrefix, scopeNames, scopeTrainable) = (saved.1, saved.2, saved.3, saved.4, saved.5)
        return outs.map(\.1)
    }

    /// A legacy nested model's weights (`dense/kernel:0`, `seq/dense/kernel`, ...) as the weights
    /// of its layers: by the first name component after the model's own name, or, for a model
    /// nested deeper, by the layer inside it that has that name. Each layer keeps file order.
    func splitLegacy(_ stored: KerasLayerWeights, model: String, specs: [LayerSpec]) throws(KerasError) -> [KerasLayerWeights] {
        func owner(_ layer: String, in specs: [LayerSpec]) -> String? {
            for sp in specs {
                if sp.name == layer { return sp.name }
            }
            for sp in specs where Self.modelClasses.contains(sp.className) {
                if let inner = try? layers(of: Self.modelJSON(sp)), owner(layer, in: inner) != nil { return sp.name }
            }
            return nil
        }
        var out: [KerasLayerWeights] = []
        for (name, t) in stored.weights {
            var n = name.hasSuffix(":0") ? String(name.dropLast(2)) : name
            if n.hasPrefix(model + "/") { n = String(n.dropFirst(model.count + 1)) }
            guard let first = n.split(separator: "/").first.map(String.init), let o = owner(first, in: specs) else {
                throw .weights(path: weights.path, reason: "nested model '\(model)': weight '\(name)' belongs to none of its layers")
            }
            if let i = out.firstIndex(where: { $0.name == o }) { out[i].weights.append((n, t)) }
            else { out.append(KerasLayerWeights(name: o, group: "\(stored.group)/\(o)", weights: [(n, t)])) }
        }
        return out
    }

    /// Builds one layer after checking the ranks of its inputs, and checks the shapes it gives.
    mutating func emitLayer(_ s: LayerSpec, _ xs: [Value], _ rec: inout KerasLayerRecord) throws(KerasError) -> [Value] {
        guard !xs.isEmpty else { throw fail(s, "no inputs") }
        if let ranks = Self.inputRanks(s.className), let bad = xs.first(where: { !ranks.contains($0.rank) }) {
            let want = ranks.count == 1 ? "\(ranks.lowerBound)" : "\(ranks.lowerBound) to \(ranks.upperBound)"
            throw fail(s, "input '\(bad.name)' has rank \(bad.rank) (shape \(Self.describe(bad.shape))); \(s.className) takes rank \(want)")
        }
        let ys = try buildLayer(s, xs, &rec)
        for y in ys {
            if let d = y.shape.first(where: { ($0 ?? 0) < 0 || ($0 ?? 0) > Self.maxConfigInt }) {
                throw fail(s, "its output would have a dimension of \(d ?? 0) (output shape \(Self.describe(y.shape)))")
            }
        }
        return ys
    }

    static func describe(_ shape: [Int?]) -> String { "[" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + "]" }

    private mutating func buildLayer(_ s: LayerSpec, _ xs: [Value], _ rec: inout KerasLayerRecord) throws(KerasError) -> [Value] {
        guard let x = xs.first else { throw fail(s, "no inputs") }
        switch s.className {
        case "Dense": return [try dense(s, x, &rec)]
        case "Conv1D", "Conv2D", "Conv3D": return [try conv(s, x, &rec)]
        case "SeparableConv1D", "SeparableConv2D": return [try separable(s, x, &rec)]
        case "DepthwiseConv2D": return [try depthwise(s, x, &rec)]
        case "BatchNormalization": return [try batchNorm(s, x, &rec)]
        case "LayerNormalization": return [try layerNorm(s, x, &rec)]
        case "Activation": return [try activation(s, x)]
        case "Lambda", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU":
            return try activationLayer(s, x, &rec)
        case "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D":
            return [try pool(s, x)]
        case "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D":
            return try globalPooling(s, x)
        case "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D":
            return try reshapingLayer(s, x)
        case "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
             "AlphaDropout", "ActivityRegularization":
            return [x]
        case "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Concatenate":
            return try mergingLayer(s, xs)
        case "Dot": return [try dot(s, xs)]
        case "Embedding": return [try embedding(s, x, &rec)]
        case "SimpleRNN", "LSTM", "GRU": return try recurrent(s, x, &rec)
        case "Bidirectional": return try bidirectional(s, x, &rec)
        case "TimeDistributed": return [try timeDistributed(s, x, &rec)]
        case "Rescaling":
            return try rescaling(s, x)
        case "Conv2DTranspose": return [try convTranspose(s, x, &rec)]
        case "GroupNormalization": return [try groupNorm(s, x, &rec)]
        case "Normalization": return [try normalization(s, x, &rec)]
        case "MultiHeadAttention": return [try multiHeadAttention(s, xs, &rec)]
        default:
            throw .unsupportedLayers(path: path, layers: ["\(s.className) '\(s.name)'"])
        }
    }

    /// The number of spatial axes of a conv/pool/pad/resize input (rank minus batch and channels):
    /// 1 to 3, or the layer is refused before any count or range is built from it.
    func spatialRank(_ s: LayerSpec, _ x: Value) throws(KerasError) -> Int {
        let k = x.rank - 2
        guard k >= 1, k <= 3 else { throw fail(s, "input of rank \(x.rank) (expected 3 to 5)") }
        return k
    }

    func padPairs(_ s: LayerSpec, _ key: String, _ k: Int) throws(KerasError) -> [(Int, Int)] {
        let j = s.config[key]
        if let v = j?.intValue { return [(Int, Int)](repeating: (v, v), count: k) }
        guard let a = j?.arrayValue else { throw fail(s, "no \(key)") }
        if k == 1, a.count == 2, let p = a[0].intValue, let q = a[1].intValue { return [(p, q)] }
        var out: [(Int, Int)] = []
        for e in a {
            if let v = e.intValue { out.append((v, v)) } else if let p = e.arrayValue, p.count == 2, let x = p[0].intValue, let y = p[1].intValue {
                out.append((x, y))
            } else { throw fail(s, "bad \(key)") }
        }
        guard out.count == k else { throw fail(s, "\(key) needs \(k) entries") }
        return out
    }

    // MARK: layers with weights

    mutating func dense(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let units = try count(s, "units")
        guard let inDim = x.shape.last ?? nil else { throw fail(s, "input's last dimension is unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let k = try variable(s, ws, 0, name: "kernel", keras3Path: "vars/0", legacy: "\(s.name)/kernel", shape: [inDim, units],
                             layout: WeightLayout(perm: [1, 0]), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [units], record: &rec) : nil
        var y: String
        if x.rank == 2 {
            y = op1("Gemm", [x.name, k] + (b.map { [$0] } ?? []), [Attribute(name: "transB", value: .int(1))], name: s.name)
        } else {
            let kt = op1("Transpose", [k], [Attribute(name: "perm", value: .ints([1, 0]))], name: s.name)
            y = op1("MatMul", [x.name, kt], name: s.name)
            if let b { y = op1("Add", [y, b], name: s.name) }
        }
        let v = Value(name: y, shape: Array(x.shape.dropLast()) + [units])
        return try activation(s, v)
    }

    /// The weights of `s`: those stored, or on a shared layer's later call none (the first call's
    /// initializers are reused through `replay`).
    mutating func weightsFor(_ s: LayerSpec) throws(KerasError) -> [Tensor] {
        stored(s)
    }

    mutating func embedding(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let vocab = try count(s, "input_dim"), dim = try count(s, "output_dim")
        guard !bool(s, "mask_zero", false) else { throw fail(s, "mask_zero is not supported (masking changes what later layers compute)") }
        let ws = try weightsFor(s)
        try expectCount(s, ws, 1)
        let e = try variable(s, ws, 0, name: "embeddings", keras3Path: "vars/0", legacy: "\(s.name)/embeddings", shape: [vocab, dim], record: &rec)
        var idx = x.name
        if x.dtype != .int32 && x.dtype != .int64 {
            idx = op1("Cast", [x.name], [Attribute(name: "to", value: .int(Int(DType.int64.onnxCode)))], name: s.name)
        }
        return Value(name: op1("Gather", [e, idx], [Attribute(name: "axis", value: .int(0))], name: s.name), shape: x.shape + [dim])
    }

    mutating func timeDistributed(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        guard let inner = s.config["layer"], let cls = inner["class_name"]?.stringValue, let icfg = inner["config"] else { throw fail(s, "no inner layer") }
        let rest = Array(x.shape.dropFirst(2))
        guard rest.allSatisfy({ $0 != nil }), let t = x.shape[1] else { throw fail(s, "needs known time and feature sizes") }
        let flat = op1("Reshape", [x.name, ints("\(s.name)/flat", [-1] + rest.map { $0 ?? 0 })], name: s.name)
        var sub = LayerSpec(className: cls, name: s.name, config: icfg, calls: [])
        sub.name = s.name
        let innerRec = rec
        var r = innerRec
        let y = try emitLayer(sub, [Value(name: flat, shape: [nil] + rest)], &r)[0]
        for var v in r.variables.dropFirst(rec.variables.count) {
            v.keras3Path = "layer/" + v.keras3Path
            rec.variables.append(v)
        }
        let yRest = Array(y.shape.dropFirst())
        guard yRest.allSatisfy({ $0 != nil }) else { throw fail(s, "inner output size unknown") }
        let back = op1("Reshape", [y.name, ints("\(s.name)/unflat", [-1, t] + yRest.map { $0 ?? 0 })], name: s.name)
        return Value(name: back, shape: [x.shape[0], t] + yRest)
    }
}
