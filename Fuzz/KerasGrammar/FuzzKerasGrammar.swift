import DLGraph
import DLKeras
import DLKit
import DLSupport
import DLTensor
import FuzzSupport
import Glibc

/// libFuzzer entry, structure-aware: the bytes are decisions (`FuzzChoices`) that build a Keras
/// `model_config` from a grammar instead of being parsed as JSON, so nearly every input is a
/// well-formed model that reaches the layer builders:
///
///   model   := Sequential(InputLayer?, layer*) | Functional(InputLayer+, layer* wired to earlier outputs)
///   layer   := one of KerasImporter.supportedClasses (plus an unknown one) with a typical config,
///              some attributes replaced by odd values (negative, zero, huge, wrong JSON types,
///              nested arrays/objects), or a nested Sequential/Functional model (depth <= 2)
///   input   := batch_shape of rank 0-5: null, 0, 1, 2, 3, huge
///   weights := per weighted layer, tensors whose shapes are the likely ones or odd ones
///
/// The graph it imports to is then planned (`Model`) and run once on small inputs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKerasGrammar(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    var g = KerasGrammar(FuzzChoices(UnsafeRawBufferPointer(start: data, count: size)))
    let config = g.model(depth: 0, top: true)
    // Triage: DLKIT_FUZZ_PRINT=1 .build-fuzz/debug/fuzz-keras-grammar CRASH prints the config it built.
    if getenv("DLKIT_FUZZ_PRINT") != nil { print(config.serialized()) }
    let file = KerasFile(path: "fuzz.h5", kind: .legacyModel, config: config, layers: g.weights, optimizer: nil,
                         kerasVersion: g.c.bool() ? "3.5.0" : "2.15.0", backend: nil)
    guard let graph = try? KerasImporter.graph(from: file),
          let model = try? Model(graph: graph, name: "fuzz", allocationBudget: 1 << 26) else { return 0 }
    var inputs: [String: Tensor] = [:]
    for v in model.inputs {
        let dims = (v.type?.dims ?? []).map { $0.value ?? 2 }
        guard dims.allSatisfy({ $0 >= 0 && $0 <= 64 }), dims.reduce(1, *) <= 4096 else { return 0 }
        let dtype = v.type?.dtype ?? .float32
        inputs[v.name] = Tensor(zeros: dtype, shape: dims)
    }
    _ = try? model.run(inputs)
    return 0
}

struct KerasGrammar {
    var c: FuzzChoices
    var weights: [KerasLayerWeights] = []
    var count = 0

    init(_ c: FuzzChoices) { self.c = c }

    static let classes = KerasImporter.supportedClasses.filter { !["InputLayer", "Sequential", "Functional", "Model"].contains($0) }

    mutating func name(_ cls: String) -> String {
        count += 1
        return "\(cls.lowercased())_\(count)"
    }

    func num(_ i: Int) -> JSON { .number(String(i)) }
    func int(_ j: JSON?) -> Int? { if case .number(let t)? = j { Int(t) } else { nil } }
    func obj(_ m: [(String, JSON)]) -> JSON { .object(m.map { JSONMember(key: $0.0, value: $0.1) }) }

    /// A JSON value of a random kind, odd on purpose.
    mutating func oddValue(_ depth: Int = 0) -> JSON {
        switch c.below(depth > 1 ? 6 : 9) {
        case 0: return num(c.oddInt())
        case 1: let d = c.oddDouble(); return d.isFinite ? .number(String(d)) : .string(String(d))
        case 2: return .string(c.pick(["", "same", "valid", "causal", "relu", "channels_first", "channels_last", "linear", "nearest",
                                        "bilinear", "sum", "concat", "ave", "mul", "float16", "int32", "x", "é\u{0}"]))
        case 3: return .bool(c.bool())
        case 4: return .null
        case 5: return .array((0..<c.below(7)).map { _ in num(c.oddInt()) })
        case 6: return .array((0..<c.below(4)).map { _ in oddValue(depth + 1) })
        case 7: return obj([("class_name", .string(c.pick(Self.classes))), ("config", oddValue(depth + 1))])
        default: return obj((0..<c.below(3)).map { _ in (c.pick(Self.keys), oddValue(depth + 1)) })
        }
    }

    static let keys = ["units", "filters", "kernel_size", "strides", "pool_size", "padding", "data_format", "activation", "axis",
                       "use_bias", "center", "scale", "epsilon", "groups", "dilation_rate", "depth_multiplier", "target_shape",
                       "dims", "n", "size", "interpolation", "cropping", "input_dim", "output_dim", "mask_zero", "return_sequences",
                       "return_state", "go_backwards", "layer", "merge_mode", "max_value", "negative_slope", "threshold", "alpha",
                       "keepdims", "num_heads", "key_dim", "value_dim", "output_shape", "attention_axes", "mean", "variance",
                       "invert", "offset", "shared_axes", "normalize", "axes", "recurrent_activation", "reset_after", "unroll",
                       "time_major", "stateful", "function", "rate", "trainable", "dtype", "rms_scaling", "output_padding",
                       "use_cudnn", "implementation", "backward_layer", "dropout"]

    /// A plausible config for `cls`, so the builder gets past its first checks.
    mutating func typical(_ cls: String) -> [(String, JSON)] {
        let k = c.pick([1, 2, 3])
        let act: JSON = .string(c.pick(["linear", "relu", "tanh", "softmax", "sigmoid", "gelu", "swish", "hard_sigmoid", "relu6"]))
        switch cls {
        case "Dense": return [("units", num(c.pick([1, 2, 3]))), ("activation", act)]
        case "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose": return [("filters", num(2)), ("kernel_size", num(k)), ("padding", .string(c.pick(["valid", "same", "causal"])))]
        case "SeparableConv1D", "SeparableConv2D": return [("filters", num(2)), ("kernel_size", num(k)), ("depth_multiplier", num(1))]
        case "DepthwiseConv2D": return [("kernel_size", num(k)), ("depth_multiplier", num(c.pick([1, 2])))]
        case "Reshape": return [("target_shape", .array((0..<c.below(4)).map { _ in num(c.pick([-1, 1, 2, 3, 4])) }))]
        case "Permute": return [("dims", .array((0..<c.below(4)).map { _ in num(c.pick([1, 2, 3, 0, -1])) }))]
        case "RepeatVector": return [("n", num(c.pick([1, 2, 3])))]
        case "Embedding": return [("input_dim", num(c.pick([1, 4, 10]))), ("output_dim", num(c.pick([1, 2, 3])))]
        case "SimpleRNN", "LSTM", "GRU": return [("units", num(c.pick([1, 2]))), ("return_sequences", .bool(c.bool()))]
        case "Bidirectional", "TimeDistributed":
            let inner = c.pick(["LSTM", "GRU", "SimpleRNN", "Dense", "Conv1D", "Flatten", "Bidirectional", "Nope"])
            return [("layer", obj([("class_name", .string(inner)), ("config", obj([("name", .string(name(inner)))] + typical(inner)))])),
                    ("merge_mode", .string(c.pick(["concat", "sum", "mul", "ave", "x"])))]
        case "Activation": return [("activation", act)]
        case "Lambda": return [("function", .string(c.pick(["relu", "keras.activations.tanh", "lambda x: x"])))]
        case "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D":
            return [(cls.hasPrefix("Zero") ? "padding" : "cropping", num(c.pick([0, 1, 2])))]
        case "UpSampling1D", "UpSampling2D": return [("size", num(2))]
        case "GroupNormalization": return [("groups", num(c.pick([1, 2])))]
        case "MultiHeadAttention": return [("num_heads", num(c.pick([1, 2]))), ("key_dim", num(c.pick([1, 2])))]
        case "Softmax", "Concatenate": return [("axis", num(c.pick([-1, 1, 2])))]
        case "Dot": return [("axes", c.bool() ? num(c.pick([1, 2, -1])) : .array([num(1), num(2)]))]
        case "Rescaling": return [("scale", .number("0.5")), ("offset", .number("1"))]
        case "Normalization": return c.bool() ? [("mean", .number("0.5")), ("variance", .number("2"))] : []
        default: return []
        }
    }

    mutating func layerConfig(_ cls: String, _ name: String) -> JSON {
        var m = [("name", JSON.string(name))] + typical(cls)
        for _ in 0..<c.below(c.oneIn(3) ? 6 : 2) {
            let key = c.pick(Self.keys)
            let v = oddValue()
            if let i = m.firstIndex(where: { $0.0 == key }) { m[i].1 = v } else { m.append((key, v)) }
        }
        return obj(m)
    }

    mutating func inputLayer(_ name: String) -> JSON {
        let rank = c.below(6)
        var dims: [JSON] = []
        for i in 0..<rank {
            dims.append(i == 0 || c.oneIn(4) ? .null : c.oneIn(16) ? num(c.oddInt()) : num(c.pick([1, 2, 3, 4, 0])))
        }
        var cfg: [(String, JSON)] = [("name", .string(name)), (c.bool() ? "batch_input_shape" : "batch_shape", .array(dims))]
        if c.oneIn(4) { cfg.append(("dtype", .string(c.pick(["float32", "int32", "int64", "float16", "bool", "uint8", "bogus"])))) }
        if c.oneIn(16) { cfg[1].1 = oddValue() }
        return obj([("class_name", .string("InputLayer")), ("config", obj(cfg)), ("name", .string(name)), ("inbound_nodes", .array([]))])
    }

    /// Stored weights for a weighted layer: the shapes it probably wants, from its config, or odd ones.
    mutating func addWeights(_ name: String, _ cls: String, _ cfg: JSON, channels: Int) {
        guard ["Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose",
               "BatchNormalization", "LayerNormalization", "PReLU", "GroupNormalization", "Normalization", "Embedding",
               "SimpleRNN", "LSTM", "GRU", "Bidirectional", "MultiHeadAttention", "TimeDistributed"].contains(cls),
              !c.oneIn(8) else { return }
        // Clamped: the likely shapes stay small whatever the config says (the config is what is fuzzed).
        let units = min(max(int(cfg["units"]) ?? int(cfg["filters"]) ?? int(cfg["output_dim"]) ?? 2, 0), 64)
        let kernel = min(max(int(cfg["kernel_size"]) ?? 1, 0), 8)
        let channels = min(max(channels, 0), 64)
        func shape(_ likely: [Int]) -> [Int] {
            if c.oneIn(6) { return (0..<c.below(5)).map { _ in c.below(5) } }
            return likely.map { max(0, min($0, 64)) }
        }
        var ts: [[Int]]
        switch cls {
        case "Dense": ts = [[channels, units], [units]]
        case "Conv1D": ts = [[kernel, channels, units], [units]]
        case "Conv2D": ts = [[kernel, kernel, channels, units], [units]]
        case "Conv3D": ts = [[kernel, kernel, kernel, channels, units], [units]]
        case "Conv2DTranspose": ts = [[kernel, kernel, units, channels], [units]]
        case "DepthwiseConv2D": ts = [[kernel, kernel, channels, 1], [channels]]
        case "SeparableConv1D": ts = [[kernel, channels, 1], [1, channels, units], [units]]
        case "SeparableConv2D": ts = [[kernel, kernel, channels, 1], [1, 1, channels, units], [units]]
        case "BatchNormalization": ts = [[channels], [channels], [channels], [channels]]
        case "LayerNormalization", "GroupNormalization": ts = [[channels], [channels]]
        case "Normalization": ts = [[channels], [channels], []]
        case "PReLU": ts = [[channels]]
        case "Embedding": ts = [[min(max(int(cfg["input_dim"]) ?? 4, 0), 64), units]]
        case "SimpleRNN": ts = [[channels, units], [units, units], [units]]
        case "LSTM": ts = [[channels, 4 * units], [units, 4 * units], [4 * units]]
        case "GRU": ts = [[channels, 3 * units], [units, 3 * units], [2, 3 * units]]
        default: ts = (0..<c.below(6)).map { _ in [c.below(4) + 1, c.below(4) + 1] }
        }
        if c.oneIn(8) { ts.removeLast(min(ts.count, c.below(2) + 1)) }
        let tensors = ts.enumerated().map { i, s in
            (name: "\(name)/w\(i):0", tensor: Tensor(zeros: c.oneIn(12) ? .int32 : .float32, shape: shape(s)))
        }
        weights.append(KerasLayerWeights(name: name, group: name, weights: tensors))
    }

    /// A model: its class name and config (with the layers list).
    mutating func model(depth: Int, top: Bool) -> JSON {
        let sequential = c.bool()
        let mname = name(sequential ? "Sequential" : "Functional")
        var layers: [JSON] = []
        var names: [String] = []
        var channels = c.pick([1, 2, 3, 4])
        let inputs = sequential ? (c.oneIn(8) ? 0 : 1) : 1 + (c.oneIn(4) ? 1 : 0)
        for _ in 0..<inputs {
            let n = name("input")
            layers.append(inputLayer(n))
            names.append(n)
        }
        for _ in 0..<(1 + c.below(5)) {
            var cls: String
            if depth < 2, c.oneIn(10) {
                cls = c.bool() ? "Sequential" : "Functional"
            } else {
                cls = c.oneIn(40) ? "NoSuchLayer" : c.pick(Self.classes)
            }
            let n = name(cls)
            var entry: [(String, JSON)]
            if cls == "Sequential" || cls == "Functional" {
                let inner = model(depth: depth + 1, top: false)
                entry = [("class_name", inner["class_name"] ?? .string(cls)), ("config", inner["config"] ?? .null)]
            } else {
                let cfg = layerConfig(cls, n)
                addWeights(n, cls, cfg, channels: channels)
                channels = int(cfg["units"]) ?? int(cfg["filters"]) ?? int(cfg["output_dim"]) ?? channels
                entry = [("class_name", .string(cls)), ("config", cfg)]
            }
            entry.append(("name", .string(n)))
            if !sequential {
                // inbound_nodes (legacy form): one call on 1-3 earlier outputs, sometimes a bad reference.
                let k = ["Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average", "Concatenate", "Dot", "MultiHeadAttention"]
                    .contains(cls) ? 2 + c.below(2) : 1
                var refs: [JSON] = []
                for _ in 0..<k {
                    let src = names.isEmpty || c.oneIn(30) ? "missing" : c.pick(names)
                    refs.append(.array([.string(src), num(c.oneIn(30) ? c.oddInt() : 0), num(c.oneIn(30) ? c.oddInt() : 0), obj([])]))
                }
                entry.append(("inbound_nodes", c.oneIn(30) ? oddValue() : .array([.array(refs)])))
            }
            layers.append(obj(entry))
            names.append(n)
        }
        var cfg: [(String, JSON)] = [("name", .string(mname)), ("layers", .array(layers))]
        if !sequential {
            let ins = names.prefix(inputs).map { JSON.array([.string($0), num(0), num(0)]) }
            cfg.append(("input_layers", .array(ins)))
            let outs = (0..<(1 + (c.oneIn(4) ? 1 : 0))).map { _ in JSON.array([.string(names.last ?? "x"), num(0), num(0)]) }
            cfg.append(("output_layers", .array(outs)))
        }
        return obj([("class_name", .string(sequential ? "Sequential" : (c.oneIn(4) ? "Model" : "Functional"))), ("config", obj(cfg))])
    }
}
