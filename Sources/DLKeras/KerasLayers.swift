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

    // MARK: activations

    static func activationName(_ j: JSON?) -> String? {
        if j == nil || j?.isNull == true { return "linear" }
        if let s = j?.stringValue { return s }
        if let c = j?["config"]?.stringValue { return c }
        if let c = j?["config"]?["name"]?.stringValue { return c }
        if let c = j?["class_name"]?.stringValue { return snakeCase(c) }
        return nil
    }

    static let knownActivations: Set<String> = [
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign", "exponential",
        "hard_sigmoid", "swish", "silu", "gelu", "relu6", "leaky_relu", "log_softmax", "mish", "hard_silu", "hard_swish",
    ]

    static func lambdaActivation(_ cfg: JSON) -> String? {
        let f = cfg["function"]
        var name: String? = f?.stringValue
        if name == nil, f?["class_name"]?.stringValue == "function" { name = f?["config"]?.stringValue }
        if let n = name?.split(separator: ".").last.map(String.init), knownActivations.contains(n) { return n }
        return nil
    }

    mutating func activate(_ x: Value, _ act: String, name: String, layer: LayerSpec) throws(KerasError) -> Value {
        func un(_ op: String, _ attrs: [Attribute] = []) -> Value {
            Value(name: op1(op, [x.name], attrs, name: name), shape: x.shape, dtype: x.dtype)
        }
        switch act {
        case "linear": return x
        case "relu": return un("Relu")
        case "sigmoid": return un("Sigmoid")
        case "tanh": return un("Tanh")
        case "softmax": return un("Softmax", [Attribute(name: "axis", value: .int(-1))])
        case "log_softmax": return un("LogSoftmax", [Attribute(name: "axis", value: .int(-1))])
        case "elu": return un("Elu", [Attribute(name: "alpha", value: .float(1))])
        case "selu": return un("Selu", [Attribute(name: "alpha", value: .float(1.67326324)), Attribute(name: "gamma", value: .float(1.05070098))])
        case "softplus": return un("Softplus")
        case "softsign": return un("Softsign")
        case "exponential": return un("Exp")
        case "mish": return un("Mish")
        case "gelu": return un("Gelu", [Attribute(name: "approximate", value: .string(keras3 ? "none" : "none"))])
        case "hard_sigmoid":
            return un("HardSigmoid", [Attribute(name: "alpha", value: .float(keras3 ? Float(1.0 / 6.0) : 0.2)), Attribute(name: "beta", value: .float(0.5))])
        case "hard_silu", "hard_swish": return un("HardSwish")
        case "leaky_relu": return un("LeakyRelu", [Attribute(name: "alpha", value: .float(0.2))])
        case "relu6":
            let lo = constant("\(name)/min", Tensor(scalar: Float(0))), hi = constant("\(name)/max", Tensor(scalar: Float(6)))
            return Value(name: op1("Clip", [x.name, lo, hi], name: name), shape: x.shape, dtype: x.dtype)
        case "swish", "silu":
            let sg = op1("Sigmoid", [x.name], name: name)
            return Value(name: op1("Mul", [x.name, sg], name: name), shape: x.shape, dtype: x.dtype)
        default: throw fail(layer, "activation '\(act)' is not supported")
        }
    }

    mutating func activation(_ s: LayerSpec, _ x: Value) throws(KerasError) -> Value {
        guard let a = Self.activationName(s.config["activation"]) else { throw fail(s, "unreadable activation") }
        return try activate(x, a, name: s.name, layer: s)
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
        case "Lambda":
            guard let a = Self.lambdaActivation(s.config) else { throw fail(s, "unsupported Lambda") }
            return [try activate(x, a, name: s.name, layer: s)]
        case "ReLU":
            let maxV = s.config["max_value"]?.doubleValue
            let slope = double(s, "negative_slope", 0), thr = double(s, "threshold", 0)
            guard thr == 0 else { throw fail(s, "threshold \(thr) is not supported") }
            var y = slope == 0 ? Value(name: op1("Relu", [x.name], name: s.name), shape: x.shape)
                : Value(name: op1("LeakyRelu", [x.name], [Attribute(name: "alpha", value: .float(Float(slope)))], name: s.name), shape: x.shape)
            if let m = maxV {
                let hi = constant("\(s.name)/max_value", Tensor(scalar: Float(m)))
                y = Value(name: op1("Min", [y.name, hi], name: s.name), shape: x.shape)
            }
            return [y]
        case "LeakyReLU":
            let a = s.config["negative_slope"]?.doubleValue ?? s.config["alpha"]?.doubleValue ?? 0.3
            return [Value(name: op1("LeakyRelu", [x.name], [Attribute(name: "alpha", value: .float(Float(a)))], name: s.name), shape: x.shape)]
        case "ELU":
            return [Value(name: op1("Elu", [x.name], [Attribute(name: "alpha", value: .float(Float(double(s, "alpha", 1))))], name: s.name), shape: x.shape)]
        case "Softmax":
            let axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.first?.intValue ?? -1
            return [Value(name: op1("Softmax", [x.name], [Attribute(name: "axis", value: .int(axis))], name: s.name), shape: x.shape)]
        case "PReLU":
            let ws = stored(s)
            try expectCount(s, ws, 1)
            var shape = Array(x.shape.dropFirst()).map { $0 ?? 1 }
            for a in s.config["shared_axes"]?.arrayValue?.compactMap(\.intValue) ?? [] where a >= 1 && a <= shape.count { shape[a - 1] = 1 }
            let alpha = try variable(s, ws, 0, name: "alpha", keras3Path: "vars/0", legacy: "\(s.name)/alpha", shape: shape, record: &rec)
            return [Value(name: op1("PRelu", [x.name, alpha], name: s.name), shape: x.shape)]
        case "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D":
            return [try pool(s, x)]
        case "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
             "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D":
            // GlobalAveragePool/GlobalMaxPool on channels-first data (the transpose in front
            // usually cancels against the one after a convolution).
            let last = try channelsLast(s)
            let keep = bool(s, "keepdims", false)
            let r = x.rank
            let opName = s.className.contains("Average") ? "GlobalAveragePool" : "GlobalMaxPool"
            let channels = last ? x.shape[r - 1] : x.shape[1]
            let ones = [Int?](repeating: 1, count: r - 2)
            let t = last ? transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: s.name) : x
            let pooled = Value(name: op1(opName, [t.name], name: s.name), shape: [x.shape[0], channels] + ones)
            if !keep {
                return [Value(name: op1("Flatten", [pooled.name], [Attribute(name: "axis", value: .int(1))], name: s.name), shape: [x.shape[0], channels])]
            }
            return [last ? transpose(pooled, [0] + Array(2..<r) + [1], name: s.name) : pooled]
        case "Flatten":
            let n = Self.product(x.shape.dropFirst())
            var src = x
            if !(try channelsLast(s)), x.rank > 2 {
                src = transpose(x, [0] + Array(2..<x.rank) + [1], name: s.name)
            }
            return [Value(name: op1("Flatten", [src.name], [Attribute(name: "axis", value: .int(1))], name: s.name), shape: [x.shape[0], n], dtype: x.dtype)]
        case "Reshape":
            guard let target = s.config["target_shape"]?.arrayValue?.map({ $0.intValue ?? -1 }) else { throw fail(s, "no target_shape") }
            let shp = ints("\(s.name)/shape", [0] + target)
            var outShape: [Int?] = [x.shape[0]] + target.map { $0 < 0 ? nil : $0 }
            guard target.allSatisfy({ $0 >= -1 && $0 <= Self.maxConfigInt }), target.filter({ $0 < 0 }).count <= 1 else {
                throw fail(s, "target_shape \(target) must be sizes with at most one -1")
            }
            if let total = Self.product(x.shape.dropFirst()), let rest = Self.product(target.filter { $0 >= 0 }), target.contains(-1) {
                outShape = [x.shape[0]] + target.map { $0 < 0 ? (rest > 0 ? total / rest : nil) : $0 }
            }
            return [Value(name: op1("Reshape", [x.name, shp], name: s.name), shape: outShape, dtype: x.dtype)]
        case "Permute":
            guard let dims = s.config["dims"]?.arrayValue?.compactMap(\.intValue), dims.sorted() == Array(1..<x.rank) else {
                throw fail(s, "dims must be a permutation of 1...\(x.rank - 1) for an input of rank \(x.rank)")
            }
            return [transpose(x, [0] + dims, name: s.name)]
        case "RepeatVector":
            let n = try count(s, "n")
            let ax = ints("\(s.name)/axis", [1])
            let u = op1("Unsqueeze", [x.name, ax], name: s.name)
            let reps = ints("\(s.name)/repeats", [1, n, 1])
            return [Value(name: op1("Tile", [u, reps], name: s.name), shape: [x.shape[0], n, x.shape.last ?? nil])]
        case "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
             "AlphaDropout", "ActivityRegularization":
            return [x]
        case "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D":
            let k = try spatialRank(s, x)
            let pads = try padPairs(s, "padding", k)
            // Padded channels-first, between convolutions and poolings whose transposes cancel.
            let last = try channelsLast(s)
            let all = [0, 0] + pads.map(\.0) + [0, 0] + pads.map(\.1)
            let p = ints("\(s.name)/pads", all)
            return [try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
                var shape = t.shape
                for i in 0..<k { shape[i + 2] = shape[i + 2].map { $0 + pads[i].0 + pads[i].1 } }
                return Value(name: g.op1("Pad", [t.name, p], name: s.name), shape: shape)
            }]
        case "Cropping1D", "Cropping2D":
            let k = try spatialRank(s, x)
            let crops = try padPairs(s, "cropping", k)
            let axes = Array(1...k)
            let starts = ints("\(s.name)/starts", crops.map(\.0))
            let ends = ints("\(s.name)/ends", crops.map { $0.1 > 0 ? -$0.1 : Int(Int64.max) })
            let ax = ints("\(s.name)/axes", axes)
            var shape = x.shape
            for i in 0..<k { shape[i + 1] = shape[i + 1].map { $0 - crops[i].0 - crops[i].1 } }
            return [Value(name: op1("Slice", [x.name, starts, ends, ax], name: s.name), shape: shape)]
        case "UpSampling1D", "UpSampling2D":
            let k = try spatialRank(s, x)
            let size = s.className == "UpSampling1D" ? [try count(s, "size", 2, max: Self.maxWindow)] : try window(s, "size", k)
            // A crafted config can pair UpSampling1D with a 4-D input (fuzz input c94f8610): the
            // factors must match the input's spatial rank before they are indexed.
            guard k >= 1, size.count == k else {
                throw fail(s, "\(size.count) size factor(s) for an input of rank \(x.rank)")
            }
            let interp = string(s, "interpolation", "nearest")
            guard interp == "nearest" || interp == "bilinear" else { throw fail(s, "interpolation '\(interp)' is not supported (nearest or bilinear)") }
            var shape = x.shape
            for i in 0..<k { shape[i + 1] = shape[i + 1].map { $0 * size[i] } }
            if interp == "bilinear" {
                // TensorFlow's resize samples at half-pixel centres (ONNX "half_pixel"), clamped at
                // the edges. Channels-first, so ONNX Runtime's linear mode takes it.
                guard try channelsLast(s) else { throw fail(s, "bilinear upsampling of channels_first data is not supported") }
                let cf = constant("\(s.name)/scales", Tensor(shape: [x.rank], scalars: [Float(1), Float(1)] + size.map(Float.init)))
                let out = try channelsFirst(x, last: true, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
                    let y = g.op1("Resize", [t.name, "", cf], [Attribute(name: "mode", value: .string("linear")),
                                                               Attribute(name: "coordinate_transformation_mode", value: .string("half_pixel"))], name: s.name)
                    return Value(name: y, shape: [t.shape[0], t.shape[1]] + (0..<k).map { shape[$0 + 1] })
                }
                return [out]
            }
            let scales = constant("\(s.name)/scales", Tensor(shape: [x.rank], scalars: [Float(1)] + size.map(Float.init) + [Float(1)]))
            let y = op1("Resize", [x.name, "", scales], [Attribute(name: "mode", value: .string("nearest")),
                                                          Attribute(name: "coordinate_transformation_mode", value: .string("asymmetric")),
                                                          Attribute(name: "nearest_mode", value: .string("floor"))], name: s.name)
            return [Value(name: y, shape: shape)]
        case "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average":
            guard xs.count >= 2 else { throw fail(s, "needs at least two inputs") }
            let opName = ["Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max", "Minimum": "Min", "Average": "Add"][s.className] ?? "Add"
            if s.className == "Subtract", xs.count != 2 { throw fail(s, "needs exactly two inputs") }
            var acc = xs[0]
            for v in xs.dropFirst() {
                acc = Value(name: op1(opName, [acc.name, v.name], name: s.name), shape: Self.broadcast(acc.shape, v.shape))
            }
            if s.className == "Average" {
                let n = constant("\(s.name)/count", Tensor(scalar: Float(xs.count)))
                acc = Value(name: op1("Div", [acc.name, n], name: s.name), shape: acc.shape)
            }
            return [acc]
        case "Concatenate":
            var axis = s.config["axis"]?.intValue ?? -1
            if axis < 0 { axis += x.rank }
            guard axis >= 0, axis < x.rank, xs.allSatisfy({ $0.rank == x.rank }) else {
                throw fail(s, "axis \(s.config["axis"]?.intValue ?? -1) for inputs of ranks \(xs.map(\.rank))")
            }
            let y = op1("Concat", xs.map(\.name), [Attribute(name: "axis", value: .int(axis))], name: s.name)
            var shape = x.shape
            if axis < shape.count { shape[axis] = xs.reduce(0) { a, v in a.flatMap { a in v.shape[axis].map { a + $0 } } } }
            return [Value(name: y, shape: shape, dtype: x.dtype)]
        case "Dot": return [try dot(s, xs)]
        case "Embedding": return [try embedding(s, x, &rec)]
        case "SimpleRNN", "LSTM", "GRU": return try recurrent(s, x, &rec)
        case "Bidirectional": return try bidirectional(s, x, &rec)
        case "TimeDistributed": return [try timeDistributed(s, x, &rec)]
        case "Rescaling":
            let sc = constant("\(s.name)/scale", Tensor(scalar: Float(double(s, "scale", 1))))
            let of = constant("\(s.name)/offset", Tensor(scalar: Float(double(s, "offset", 0))))
            let m = op1("Mul", [x.name, sc], name: s.name)
            return [Value(name: op1("Add", [m, of], name: s.name), shape: x.shape)]
        case "Conv2DTranspose": return [try convTranspose(s, x, &rec)]
        case "GroupNormalization": return [try groupNorm(s, x, &rec)]
        case "Normalization": return [try normalization(s, x, &rec)]
        case "MultiHeadAttention": return [try multiHeadAttention(s, xs, &rec)]
        default:
            throw .unsupportedLayers(path: path, layers: ["\(s.className) '\(s.name)'"])
        }
    }

    static func broadcast(_ a: [Int?], _ b: [Int?]) -> [Int?] {
        let n = max(a.count, b.count)
        let pa = [Int?](repeating: 1, count: n - a.count) + a, pb = [Int?](repeating: 1, count: n - b.count) + b
        return zip(pa, pb).map { x, y in x == 1 ? y : x }
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

    /// Pads for one spatial dimension, TensorFlow style.
    func pads(_ padding: String, input: Int?, kernel: Int, stride: Int, dilation: Int) -> (Int, Int, Int?)? {
        let eff = (kernel - 1) * dilation + 1
        switch padding {
        case "valid":
            return (0, 0, input.map { ($0 - eff) / stride + 1 })
        case "same":
            guard let n = input else { return nil }
            let out = (n + stride - 1) / stride
            let total = max((out - 1) * stride + eff - n, 0)
            return (total / 2, total - total / 2, out)
        case "causal":
            return (eff - 1, 0, input.map { ($0 + eff - 1 - eff) / stride + 1 })
        default: return nil
        }
    }

    /// Runs an op made for channels-first data on a channels-last value.
    mutating func channelsFirst(_ x: Value, last: Bool, name: String, _ body: (inout GraphBuilder, Value) throws(KerasError) -> Value) throws(KerasError) -> Value {
        guard last else { return try body(&self, x) }
        let r = x.rank
        let t = transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: name)
        let y = try body(&self, t)
        return transpose(y, [0] + Array(2..<r) + [1], name: name)
    }

    /// Conv attributes and output spatial shape for `x` (channels-first inside).
    func convGeometry(_ s: LayerSpec, spatial: [Int?], kernel: [Int]) throws(KerasError) -> ([Attribute], [Int?]) {
        let k = kernel.count
        let strides = try window(s, "strides", k, [Int](repeating: 1, count: k))
        let dil = try window(s, "dilation_rate", k, [Int](repeating: 1, count: k))
        let padding = string(s, "padding", "valid")
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        var auto = false
        for i in 0..<k {
            guard let p = pads(padding, input: spatial[i], kernel: kernel[i], stride: strides[i], dilation: dil[i]) else {
                if padding == "same" { auto = true; out.append(nil); begin.append(0); end.append(0); continue }
                throw fail(s, "padding '\(padding)' is not supported")
            }
            begin.append(p.0); end.append(p.1); out.append(p.2)
        }
        var attrs = [Attribute(name: "kernel_shape", value: .ints(kernel)), Attribute(name: "strides", value: .ints(strides)),
                     Attribute(name: "dilations", value: .ints(dil))]
        attrs.append(auto ? Attribute(name: "auto_pad", value: .string("SAME_UPPER")) : Attribute(name: "pads", value: .ints(begin + end)))
        return (attrs, out)
    }

    mutating func conv(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        guard k >= 1, k <= 3 else { throw fail(s, "input of rank \(x.rank)") }
        let last = try channelsLast(s)
        let filters = try count(s, "filters")
        let kernel = try window(s, "kernel_size", k)
        let groups = try count(s, "groups", 1)
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        guard groups >= 1, inC % groups == 0 else { throw fail(s, "groups \(groups) does not divide \(inC) channels") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let perm = [k + 1, k] + Array(0..<k)
        let w = try variable(s, ws, 0, name: "kernel", keras3Path: "vars/0", legacy: "\(s.name)/kernel", shape: kernel + [inC / groups, filters],
                             layout: WeightLayout(perm: perm), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        let (attrs, outSpatial) = try convGeometry(s, spatial: spatial, kernel: kernel)
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1("Conv", [t.name, w] + (b.map { [$0] } ?? []), attrs + [Attribute(name: "group", value: .int(groups))], name: s.name)
            return Value(name: o, shape: [t.shape[0], filters] + outSpatial)
        }
        return try activation(s, y)
    }

    mutating func depthwise(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let kernel = try window(s, "kernel_size", k)
        let mult = try count(s, "depth_multiplier", 1)
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let w = try variable(s, ws, 0, name: "depthwise_kernel", keras3Path: "vars/0", legacy: "\(s.name)/depthwise_kernel",
                             shape: kernel + [inC, mult], layout: WeightLayout(perm: [k, k + 1] + Array(0..<k), irShape: [inC * mult, 1] + kernel), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [inC * mult], record: &rec) : nil
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        let (attrs, outSpatial) = try convGeometry(s, spatial: spatial, kernel: kernel)
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1("Conv", [t.name, w] + (b.map { [$0] } ?? []), attrs + [Attribute(name: "group", value: .int(inC))], name: s.name)
            return Value(name: o, shape: [t.shape[0], inC * mult] + outSpatial)
        }
        return try activation(s, y)
    }

    mutating func separable(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let kernel = try window(s, "kernel_size", k)
        let mult = try count(s, "depth_multiplier", 1)
        let filters = try count(s, "filters")
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 3 : 2)
        let dw = try variable(s, ws, 0, name: "depthwise_kernel", keras3Path: "vars/0", legacy: "\(s.name)/depthwise_kernel",
                              shape: kernel + [inC, mult], layout: WeightLayout(perm: [k, k + 1] + Array(0..<k), irShape: [inC * mult, 1] + kernel), record: &rec)
        let ones = [Int](repeating: 1, count: k)
        let pw = try variable(s, ws, 1, name: "pointwise_kernel", keras3Path: "vars/1", legacy: "\(s.name)/pointwise_kernel",
                              shape: ones + [inC * mult, filters], layout: WeightLayout(perm: [k + 1, k] + Array(0..<k)), record: &rec)
        let b = useBias ? try variable(s, ws, 2, name: "bias", keras3Path: "vars/2", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        let (attrs, outSpatial) = try convGeometry(s, spatial: spatial, kernel: kernel)
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let d = g.op1("Conv", [t.name, dw], attrs + [Attribute(name: "group", value: .int(inC))], name: s.name)
            let o = g.op1("Conv", [d, pw] + (b.map { [$0] } ?? []), [Attribute(name: "kernel_shape", value: .ints(ones))], name: s.name)
            return Value(name: o, shape: [t.shape[0], filters] + outSpatial)
        }
        return try activation(s, y)
    }

    mutating func convTranspose(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let filters = try count(s, "filters")
        let kernel = try window(s, "kernel_size", k)
        let strides = try window(s, "strides", k, [Int](repeating: 1, count: k))
        let dil = try window(s, "dilation_rate", k, [Int](repeating: 1, count: k))
        guard dil.allSatisfy({ $0 == 1 }), s.config["output_padding"]?.isNull ?? true else { throw fail(s, "dilation or output_padding is not supported") }
        guard let inC = last ? x.shape.last ?? nil : x.shape[1] else { throw fail(s, "input channels unknown") }
        let useBias = bool(s, "use_bias", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, useBias ? 2 : 1)
        let w = try variable(s, ws, 0, name: "kernel", keras3Path: "vars/0", legacy: "\(s.name)/kernel", shape: kernel + [filters, inC],
                             layout: WeightLayout(perm: [k + 1, k] + Array(0..<k)), record: &rec)
        let b = useBias ? try variable(s, ws, 1, name: "bias", keras3Path: "vars/1", legacy: "\(s.name)/bias", shape: [filters], record: &rec) : nil
        let padding = string(s, "padding", "valid")
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        for i in 0..<k {
            if padding == "valid" {
                let extra = max(kernel[i] - strides[i], 0)
                _ = extra
                begin.append(0); end.append(0)
                out.append(spatial[i].map { ($0 - 1) * strides[i] + kernel[i] + max(strides[i] - kernel[i], 0) })
            } else if padding == "same" {
                let total = max(kernel[i] - strides[i], 0)
                begin.append(total / 2); end.append(total - total / 2)
                out.append(spatial[i].map { $0 * strides[i] })
            } else { throw fail(s, "padding '\(padding)'") }
        }
        // Keras's valid output is max(k, s) + (n-1)s: ONNX gives (n-1)s + k; the difference is output_padding.
        let outPad = (0..<k).map { padding == "valid" ? max(strides[$0] - kernel[$0], 0) : 0 }
        let attrs = [Attribute(name: "kernel_shape", value: .ints(kernel)), Attribute(name: "strides", value: .ints(strides)),
                     Attribute(name: "pads", value: .ints(begin + end)), Attribute(name: "output_padding", value: .ints(outPad))]
        let y = try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1("ConvTranspose", [t.name, w] + (b.map { [$0] } ?? []), attrs, name: s.name)
            return Value(name: o, shape: [t.shape[0], filters] + out)
        }
        return try activation(s, y)
    }

    mutating func pool(_ s: LayerSpec, _ x: Value) throws(KerasError) -> Value {
        let k = try spatialRank(s, x)
        let last = try channelsLast(s)
        let size = try window(s, "pool_size", k, [Int](repeating: 2, count: k))
        var strides = size
        if let st = s.config["strides"], !st.isNull { strides = try window(s, "strides", k) }
        let padding = string(s, "padding", "valid")
        let spatial = last ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        var begin: [Int] = [], end: [Int] = [], out: [Int?] = []
        for i in 0..<k {
            guard let p = pads(padding, input: spatial[i], kernel: size[i], stride: strides[i], dilation: 1) else {
                throw fail(s, "padding '\(padding)' needs known spatial sizes")
            }
            begin.append(p.0); end.append(p.1); out.append(p.2)
        }
        let isMax = s.className.hasPrefix("Max")
        let channels = last ? x.shape.last ?? nil : x.shape[1]
        return try channelsFirst(x, last: last, name: s.name) { (g: inout GraphBuilder, t: Value) throws(KerasError) -> Value in
            let o = g.op1(isMax ? "MaxPool" : "AveragePool", [t.name], [
                Attribute(name: "kernel_shape", value: .ints(size)), Attribute(name: "strides", value: .ints(strides)),
                Attribute(name: "pads", value: .ints(begin + end)),
            ], name: s.name)
            return Value(name: o, shape: [t.shape[0], channels] + out)
        }
    }

    mutating func batchNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        var axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.first?.intValue ?? -1
        if axis < 0 { axis += x.rank }
        guard axis >= 1, axis < x.rank, let c = x.shape[axis] else { throw fail(s, "axis \(axis) with unknown size") }
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, 2 + (center ? 1 : 0) + (scale ? 1 : 0))
        var i = 0
        func next(_ n: String, _ r: inout KerasLayerRecord, _ g: inout GraphBuilder) throws(KerasError) -> String {
            defer { i += 1 }
            return try g.variable(s, ws, i, name: n, keras3Path: "vars/\(i)", legacy: "\(s.name)/\(n)", shape: [c], record: &r)
        }
        _ = try fillerCount(s, c)
        let gamma = scale ? try next("gamma", &rec, &self) : constant("\(s.name)/gamma", .filled(1, shape: [c]))
        let beta = center ? try next("beta", &rec, &self) : constant("\(s.name)/beta", .filled(0, shape: [c]))
        let mean = try next("moving_mean", &rec, &self)
        let variance = try next("moving_variance", &rec, &self)
        let eps = Float(double(s, "epsilon", 1e-3))
        let perm = axis == 1 ? Array(0..<x.rank) : [0, axis] + Array(1..<x.rank).filter { $0 != axis }
        let t = axis == 1 ? x : transpose(x, perm, name: s.name)
        let o = op1("BatchNormalization", [t.name, gamma, beta, mean, variance], [Attribute(name: "epsilon", value: .float(eps))], name: s.name)
        var y = Value(name: o, shape: t.shape)
        if axis != 1 {
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            y = transpose(y, inverse, name: s.name)
        }
        return y
    }

    mutating func layerNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        var axis = s.config["axis"]?.intValue ?? s.config["axis"]?.arrayValue?.last?.intValue ?? -1
        if let a = s.config["axis"]?.arrayValue, a.count != 1 { throw fail(s, "normalising over several axes is not supported") }
        if axis < 0 { axis += x.rank }
        guard axis == x.rank - 1, let c = x.shape[axis] else { throw fail(s, "only the last axis is supported") }
        guard !bool(s, "rms_scaling", false) else { throw fail(s, "rms_scaling is not supported") }
        _ = try fillerCount(s, c)
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, (center ? 1 : 0) + (scale ? 1 : 0))
        // Filler constants only for the parts Keras leaves out (created first, they would take
        // the variables' names and stay unused).
        let gamma = scale ? try variable(s, ws, 0, name: "gamma", keras3Path: "vars/0", legacy: "\(s.name)/gamma", shape: [c], record: &rec)
            : constant("\(s.name)/gamma", .filled(1, shape: [c]))
        let i = scale ? 1 : 0
        let beta = center ? try variable(s, ws, i, name: "beta", keras3Path: "vars/\(i)", legacy: "\(s.name)/beta", shape: [c], record: &rec)
            : constant("\(s.name)/beta", .filled(0, shape: [c]))
        let o = op1("LayerNormalization", [x.name, gamma, beta], [Attribute(name: "axis", value: .int(-1)),
                                                                   Attribute(name: "epsilon", value: .float(Float(double(s, "epsilon", 1e-3))))], name: s.name)
        return Value(name: o, shape: x.shape)
    }

    /// GroupNormalization on the last axis: channels-first, groups as rows of a LayerNormalization
    /// without affine part, then Keras's per-channel gamma and beta.
    mutating func groupNorm(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        let axis = s.config["axis"]?.intValue ?? -1
        guard axis == -1 || axis == x.rank - 1, let c = x.shape.last ?? nil else { throw fail(s, "only the last axis with a known size is supported") }
        let groups = try count(s, "groups", 32)
        let spatial = x.shape.dropFirst().dropLast()
        guard c % groups == 0, let area = Self.product(spatial), case let (k, o) = (c / groups).multipliedReportingOverflow(by: area), !o else {
            throw fail(s, "groups \(groups) must divide \(c) channels, spatial sizes known")
        }
        _ = try fillerCount(s, k)
        let center = bool(s, "center", true), scale = bool(s, "scale", true)
        let ws = try weightsFor(s)
        try expectCount(s, ws, (center ? 1 : 0) + (scale ? 1 : 0))
        var i = 0
        var gamma: String? = nil, beta: String? = nil
        if scale { gamma = try variable(s, ws, i, name: "gamma", keras3Path: "vars/\(i)", legacy: "\(s.name)/gamma", shape: [c], record: &rec); i += 1 }
        if center { beta = try variable(s, ws, i, name: "beta", keras3Path: "vars/\(i)", legacy: "\(s.name)/beta", shape: [c], record: &rec) }
        let r = x.rank
        let t = transpose(x, [0, r - 1] + Array(1..<(r - 1)), name: s.name)
        let rows = op1("Reshape", [t.name, ints("\(s.name)/rows", [0, groups, k])], name: s.name)
        let ones = constant("\(s.name)/unit_scale", .filled(1, shape: [k]))
        let zeros = constant("\(s.name)/unit_bias", .filled(0, shape: [k]))
        let n = op1("LayerNormalization", [rows, ones, zeros], [Attribute(name: "axis", value: .int(-1)),
                                                                Attribute(name: "epsilon", value: .float(Float(double(s, "epsilon", 1e-3))))], name: s.name)
        let back = op1("Reshape", [n, ints("\(s.name)/back", [0, c] + spatial.map { $0 ?? 0 })], name: s.name)
        var y = transpose(Value(name: back, shape: t.shape), [0] + Array(2..<r) + [1], name: s.name)
        if let gamma { y = Value(name: op1("Mul", [y.name, gamma], name: s.name), shape: x.shape) }
        if let beta { y = Value(name: op1("Add", [y.name, beta], name: s.name), shape: x.shape) }
        return y
    }

    /// Normalization: (x - mean) / max(sqrt(variance), 1e-7) on the last axis, from the config's
    /// mean and variance or the adapted statistics stored as weights (mean, variance, count).
    mutating func normalization(_ s: LayerSpec, _ x: Value, _ rec: inout KerasLayerRecord) throws(KerasError) -> Value {
        if let a = s.config["axis"]?.arrayValue, a.count != 1 || !(a[0].intValue == -1 || a[0].intValue == x.rank - 1) {
            throw fail(s, "only normalising over the last axis is supported")
        }
        guard !bool(s, "invert", false) else { throw fail(s, "invert is not supported") }
        guard let c = x.shape.last ?? nil else { throw fail(s, "the last dimension is unknown") }
        _ = try fillerCount(s, c)
        let mean: String, variance: String
        func values(_ key: String) -> [Float]? {
            if let v = s.config[key]?.doubleValue { return [Float](repeating: Float(v), count: c) }
            return s.config[key]?.arrayValue?.compactMap { $0.doubleValue.map { Float($0) } }
        }
        if let m = values("mean"), let v = values("variance") {
            guard m.count == c, v.count == c else { throw fail(s, "mean/variance must have \(c) values") }
            mean = constant("\(s.name)/mean", Tensor(shape: [c], scalars: m))
            variance = constant("\(s.name)/variance", Tensor(shape: [c], scalars: v))
        } else {
            let ws = try weightsFor(s)
            try expectCount(s, ws, 3)
            mean = try variable(s, ws, 0, name: "mean", keras3Path: "vars/0", legacy: "\(s.name)/mean", shape: ws[0].shape, record: &rec)
            variance = try variable(s, ws, 1, name: "variance", keras3Path: "vars/1", legacy: "\(s.name)/variance", shape: ws[1].shape, record: &rec)
            _ = try variable(s, ws, 2, name: "count", keras3Path: "vars/2", legacy: "\(s.name)/count", shape: ws[2].shape, record: &rec)
            guard ws[0].elementCount == c, ws[1].elementCount == c else { throw fail(s, "stored mean/variance do not have \(c) values") }
        }
        let shp = ints("\(s.name)/stat_shape", [c])
        let m = op1("Reshape", [mean, shp], name: s.name), v = op1("Reshape", [variance, shp], name: s.name)
        let sd = op1("Sqrt", [v], name: s.name)
        let eps = constant("\(s.name)/epsilon", Tensor(scalar: Float(1e-7)))
        let den = op1("Max", [sd, eps], name: s.name)
        let num = op1("Sub", [x.name, m], name: s.name)
        return Value(name: op1("Div", [num, den], name: s.name), shape: x.shape)
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

    mutating func dot(_ s: LayerSpec, _ xs: [Value]) throws(KerasError) -> Value {
        guard xs.count == 2 else { throw fail(s, "needs two inputs") }
        var a = xs[0], b = xs[1]
        let ax = s.config["axes"]
        var axes: [Int] = ax?.intValue.map { [$0, $0] } ?? ax?.arrayValue?.compactMap(\.intValue) ?? []
        guard axes.count == 2 else { throw fail(s, "bad axes") }
        axes = [axes[0] < 0 ? axes[0] + a.rank : axes[0], axes[1] < 0 ? axes[1] + b.rank : axes[1]]
        guard (1..<a.rank).contains(axes[0]), (1..<b.rank).contains(axes[1]) else { throw fail(s, "axes \(axes) outside the inputs' ranks \(a.rank) and \(b.rank)") }
        if bool(s, "normalize", false) {
            for (i, v) in [a, b].enumerated() {
                let n = op1("LpNormalization", [v.name], [Attribute(name: "axis", value: .int(axes[i])), Attribute(name: "p", value: .int(2))], name: s.name)
                if i == 0 { a = Value(name: n, shape: v.shape) } else { b = Value(name: n, shape: v.shape) }
            }
        }
        if a.rank == 2, b.rank == 2, axes == [1, 1] {
            let m = op1("Mul", [a.name, b.name], name: s.name)
            let r = op1("ReduceSum", [m, ints("\(s.name)/axes", [1])], [Attribute(name: "keepdims", value: .int(1))], name: s.name)
            return Value(name: r, shape: [a.shape[0], 1])
        }
        guard a.rank == 3, b.rank == 3 else { throw fail(s, "only rank 2 (axes 1) and rank 3 inputs are supported") }
        if axes[0] == 1 { a = transpose(a, [0, 2, 1], name: s.name) }
        if axes[1] == 2 { b = transpose(b, [0, 2, 1], name: s.name) }
        return Value(name: op1("MatMul", [a.name, b.name], name: s.name), shape: [a.shape[0], a.shape[1], b.shape[2]])
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
