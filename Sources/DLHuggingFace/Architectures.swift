import DLGraph
import DLTensor

/// Builds the IR graph of a folder's architecture from its config.json, weights bound by name.
///
/// Encoders (bert, roberta and its kin, distilbert) take `input_ids`, `attention_mask` (and
/// `token_type_ids` for bert) and give `last_hidden_state` (and `pooler_output` when the weights
/// have a pooler); decoders (gpt2, llama, mistral, qwen2) take `input_ids`, `attention_mask` and give
/// `logits`. All inputs are int64 [batch, sequence]; position ids count from 0 (roberta: from its
/// padding index, skipping padding, as transformers does), or come from a `position_ids` input.
public enum HFArchitecture {
    public static let encoders: Set<String> = ["bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"]
    public static let decoders: Set<String> = ["gpt2", "llama", "mistral", "qwen2"]
    public static var supported: [String] { (encoders.union(decoders)).sorted() }

    /// - Parameter cache: decoders only: add the KV cache inputs `past_key_values.<i>.key/value`
    ///   and outputs `present.<i>.key/value` ([batch, kv heads, length, head dim]); the
    ///   attention_mask then covers the past and the new tokens.
    /// - Parameter positionIds: architectures whose transformers `forward` takes `position_ids`
    ///   (all but distilbert): an int64 `position_ids` input ([batch, sequence], after
    ///   attention_mask and token_type_ids) gives the positions of the embeddings or rotary angles,
    ///   as in optimum's decoder layout; batched left-padded generation feeds `cumsum(mask) - 1`.
    ///   Causality still follows the order of the tokens.
    /// - Parameter fixedCache: with `cache`, a cache of fixed capacity instead of one that grows
    ///   (transformers' static cache): `past_key_values.<i>.*` and `present.<i>.*` are
    ///   [batch, kv heads, capacity, head dim], an int64 `cache_position` input ([sequence], after
    ///   `position_ids`) gives the slots the new tokens take (they are written there, TensorScatter),
    ///   and attention_mask ([batch, capacity]) covers all slots; a token sees the slots up to its
    ///   own. Every decode step then has the same shapes until the capacity grows, so a runtime
    ///   plans once per capacity. For generation; exports keep the growing layout optimum uses.
    public static func graph(config: HFConfig, weights: HFWeights, cache: Bool = false, positionIds: Bool = false,
                             fixedCache: Bool = false) throws(HFError) -> Graph {
        let layout = cache ? (fixedCache ? CacheLayout.fixed : .growing) : .none
        var g: Graph
        switch config.modelType {
        case "bert", "roberta", "xlm-roberta", "camembert", "electra": g = try bert(config, weights, positionIds: positionIds)
        case "distilbert": g = try distilBERT(config, weights)
        case "gpt2": g = try gpt2(config, weights, cache: layout, positionIds: positionIds)
        case "llama", "mistral", "qwen2": g = try llama(config, weights, cache: layout, positionIds: positionIds)
        default:
            throw .unsupported(path: config.path, reason: "model_type '\(config.modelType)' (DLKit builds \(supported.joined(separator: ", ")))")
        }
        // TensorScatter (the fixed cache's write) is an opset 24 op
        g.metadata.opsetImports = [(domain: "", version: layout == .fixed ? 24 : 18)]
        g.metadata.producerName = "dlkit"
        g.metadata.metadataProps = [("hf.model_type", config.modelType)]
        return g
    }

    static let batchSeq: [Dim] = [.symbolic("batch"), .symbolic("sequence")]

    /// A decoder's KV cache: none, growing by the new tokens each step (Concat), or of a fixed
    /// capacity the new tokens are written into (see `graph`'s fixedCache).
    enum CacheLayout { case none, growing, fixed }

    static func idInput(_ name: String) -> ValueInfo { ValueInfo(name: name, type: TensorType(dtype: .int64, dims: batchSeq)) }
    static let negMin = -Float.greatestFiniteMagnitude

    /// The values every architecture starts from: [batch, seq] as a shape value, the positions of
    /// the new tokens (past..<past+seq) and of all keys (0..<past+seq; the same without a cache),
    /// and the positions the embeddings or rotary angles use: `positions` ([seq]), or the
    /// `position_ids` input ([batch, seq]) when the graph takes one.
    struct Common {
        let bs: String, positions: String, keyPositions: String, embedPositions: String
        var fromInput: Bool { embedPositions == "position_ids" }
    }

    static func common(_ b: inout GraphBuilder, cache: CacheLayout = .none, positionIds: Bool = false) -> Common {
        let bs = b.op1("Shape", ["input_ids"], name: "inputs")
        let seq = b.op1("Gather", [bs, b.scalarInt(1)], [b.attr("axis", 0)], name: "inputs")
        if cache == .fixed {
            // The new tokens' slots are cache_position; they are written from its first, per batch row.
            let capacity = b.op1("Gather", [b.op1("Shape", ["past_key_values.0.key"], name: "inputs"), b.scalarInt(2)], [b.attr("axis", 0)], name: "inputs")
            let first = b.op1("Slice", ["cache_position", b.ints([0]), b.ints([1])], name: "positions")
            b.cacheWrite = b.op1("Expand", [first, b.op1("Slice", [bs, b.ints([0]), b.ints([1])], name: "positions")], name: "positions")
            return Common(bs: bs, positions: "cache_position", keyPositions: b.op1("Range", [b.scalarInt(0), capacity, b.scalarInt(1)], name: "positions"),
                          embedPositions: positionIds ? "position_ids" : "cache_position")
        }
        guard cache == .growing else {
            let positions = b.op1("Range", [b.scalarInt(0), seq, b.scalarInt(1)], name: "positions")
            return Common(bs: bs, positions: positions, keyPositions: positions, embedPositions: positionIds ? "position_ids" : positions)
        }
        let pastShape = b.op1("Shape", ["past_key_values.0.key"], name: "inputs")
        let past = b.op1("Gather", [pastShape, b.scalarInt(2)], [b.attr("axis", 0)], name: "inputs")
        let total = b.op1("Add", [past, seq], name: "positions")
        let positions = b.op1("Range", [past, total, b.scalarInt(1)], name: "positions")
        return Common(bs: bs, positions: positions, keyPositions: b.op1("Range", [b.scalarInt(0), total, b.scalarInt(1)], name: "positions"),
                      embedPositions: positionIds ? "position_ids" : positions)
    }

    /// The cache inputs and outputs of `layers` layers, after input_ids and attention_mask.
    static func cacheIO(_ b: GraphBuilder, layers: Int, kvHeads: Int, headDim: Int, fixed: Bool) -> (inputs: [ValueInfo], outputs: [(String, String, [Dim])]) {
        let dims: [Dim] = [.symbolic("batch"), .fixed(kvHeads), .symbolic(fixed ? "capacity" : "past_sequence"), .fixed(headDim)]
        let present: [Dim] = [.symbolic("batch"), .fixed(kvHeads), .symbolic(fixed ? "capacity" : "total_sequence"), .fixed(headDim)]
        var ins: [ValueInfo] = [], outs: [(String, String, [Dim])] = []
        for i in 0..<layers {
            for (j, kind) in ["key", "value"].enumerated() {
                ins.append(ValueInfo(name: "past_key_values.\(i).\(kind)", type: TensorType(dtype: .float32, dims: dims)))
                let value = j == 0 ? b.presents[i].0 : b.presents[i].1
                outs.append((value, "present.\(i).\(kind)", present))
            }
        }
        return (ins, outs)
    }

    /// The padding mask as an additive [batch, 1, 1, seq] float tensor (0 or the lowest float).
    static func paddingMask(_ b: inout GraphBuilder) -> String {
        let m = b.op1("Cast", ["attention_mask"], [b.attr("to", Int(DType.float32.onnxCode))], name: "mask")
        let inv = b.op1("Sub", [b.scalar(1), m], name: "mask")
        let add = b.op1("Mul", [inv, b.scalar(negMin)], name: "mask")
        return b.op1("Unsqueeze", [add, b.ints([1, 2])], name: "mask")
    }

    /// Padding and causality (and a sliding window) as one additive [batch, 1, seq, seq] mask;
    /// `extraAxes` more unit axes after the batch for grouped attention.
    static func causalMask(_ b: inout GraphBuilder, _ c: Common, window: Int?, extraAxes: Int) -> String {
        let rows = b.op1("Unsqueeze", [c.positions, b.ints([1])], name: "mask")
        let cols = b.op1("Unsqueeze", [c.keyPositions, b.ints([0])], name: "mask")
        var allowed = b.op1("LessOrEqual", [cols, rows], name: "mask")
        if let window {
            let lowest = b.op1("Sub", [rows, b.scalarInt(window)], name: "mask")
            allowed = b.op1("And", [allowed, b.op1("Greater", [cols, lowest], name: "mask")], name: "mask")
        }
        let pad = b.op1("Cast", ["attention_mask"], [b.attr("to", Int(DType.bool.onnxCode))], name: "mask")
        let pad4 = b.op1("Unsqueeze", [pad, b.ints(Array(1...(2 + extraAxes)))], name: "mask")
        allowed = b.op1("And", [allowed, pad4], name: "mask")
        let add = b.op1("Where", [allowed, b.scalar(0), b.scalar(negMin)], name: "mask")
        return add
    }

    static func finish(_ b: GraphBuilder, inputs: [ValueInfo], outputs: [(String, String, [Dim])]) -> Graph {
        var nodes = b.nodes
        for (value, name, _) in outputs { nodes.append(Node(name: name, opType: "Identity", inputs: [value], outputs: [name])) }
        let outs = outputs.map { ValueInfo(name: $0.1, type: TensorType(dtype: .float32, dims: $0.2)) }
        return Graph(name: b.config.modelType, inputs: inputs, outputs: outs, nodes: nodes, initializers: b.initializers)
    }

    /// "weight"/"bias", or the "gamma"/"beta" of older BERT checkpoints.
    static func layerNormNames(_ b: GraphBuilder, _ name: String) -> (String, String) {
        b.has(name + ".weight") ? ("weight", "bias") : ("gamma", "beta")
    }

    // MARK: encoders

    /// The weight names of one post-norm encoder layer (BERT's and DistilBERT's).
    struct EncoderLayerNames {
        let query, key, value, out, attentionNorm, up, down, outputNorm: String
    }

    /// h = LN(h + attention(h)); h = LN(h + down(act(up(h)))).
    static func encoderLayer(_ b: inout GraphBuilder, _ h: String, _ n: EncoderLayerNames, _ c: Common, mask: String,
                             hidden: Int, heads: Int, inter: Int, eps: Double, act: String) throws(HFError) -> String {
        let q = try b.linear(h, n.query, in: hidden, out: hidden)
        let k = try b.linear(h, n.key, in: hidden, out: hidden)
        let v = try b.linear(h, n.value, in: hidden, out: hidden)
        let a = b.attention(q: q, k: k, v: v, bs: c.bs, heads: heads, kvHeads: heads, headDim: hidden / heads, mask: mask, name: n.query)
        let o = try b.linear(a, n.out, in: hidden, out: hidden)
        var (gn, bn) = layerNormNames(b, n.attentionNorm)
        let h1 = try b.layerNorm(b.op1("Add", [o, h], name: n.out), n.attentionNorm, hidden, eps: eps, weightName: gn, biasName: bn)
        let up = try b.activation(try b.linear(h1, n.up, in: hidden, out: inter), act, name: n.up)
        let down = try b.linear(up, n.down, in: inter, out: hidden)
        (gn, bn) = layerNormNames(b, n.outputNorm)
        return try b.layerNorm(b.op1("Add", [down, h1], name: n.down), n.outputNorm, hidden, eps: eps, weightName: gn, biasName: bn)
    }

    /// [batch·seq, hidden] back to [batch, seq, hidden].
    static func unflatten(_ b: inout GraphBuilder, _ h: String, _ c: Common, _ width: Int, name: String) -> String {
        let shape = b.op1("Concat", [c.bs, b.ints([width])], [b.attr("axis", 0)], name: name)
        return b.op1("Reshape", [h, shape], name: name)
    }

    /// BERT and its kin: roberta's positions; electra's embeddings of their own width
    /// (`embedding_size`) projected to the hidden size.
    static func bert(_ config: HFConfig, _ w: HFWeights, positionIds: Bool) throws(HFError) -> Graph {
        let roberta = !["bert", "electra"].contains(config.modelType)
        let base = config.modelType == "xlm-roberta" ? "roberta." : "\(config.modelType)."
        let hidden = try config.int("hidden_size"), heads = try config.int("num_attention_heads")
        let layers = try config.int("num_hidden_layers", max: 1000), inter = try config.int("intermediate_size")
        let vocab = try config.int("vocab_size"), maxPos = try config.int("max_position_embeddings")
        let types = try config.int("type_vocab_size", default: 2)
        let width = config.modelType == "electra" ? try config.int("embedding_size", default: 128) : hidden
        let eps = try config.double("layer_norm_eps", default: 1e-12)
        let act = try config.string("hidden_act", default: "gelu")
        let posType = try config.string("position_embedding_type", default: "absolute")
        guard posType == "absolute" else { throw .unsupported(path: config.path, reason: "position_embedding_type '\(posType)'") }
        guard hidden % heads == 0 else { throw .invalid(path: config.path, reason: "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)") }
        var b = try GraphBuilder(config: config, weights: w, probe: "embeddings.word_embeddings.weight", prefixes: ["", base, "roberta.", "model."])
        let c = common(&b, positionIds: positionIds)
        let wordEmb = try b.weight("embeddings.word_embeddings.weight", [vocab, width])
        var e = b.op1("Gather", [wordEmb, "input_ids"], name: "embeddings")
        let posEmb = try b.weight("embeddings.position_embeddings.weight", [maxPos, width])
        let typeEmb = try b.weight("embeddings.token_type_embeddings.weight", [types, width])
        var inputs = [idInput("input_ids"), idInput("attention_mask")]
        if roberta && !positionIds {
            // positions count non-padding tokens from padding_idx + 1 (transformers' create_position_ids_from_input_ids)
            let pad = b.scalarInt(config.tokenId("pad_token_id") ?? 1)
            let notPad = b.op1("Not", [b.op1("Equal", ["input_ids", pad], name: "positions")], name: "positions")
            let m = b.op1("Cast", [notPad], [b.attr("to", Int(DType.int64.onnxCode))], name: "positions")
            let count = b.op1("CumSum", [m, b.scalarInt(1)], name: "positions")
            let pos = b.op1("Add", [b.op1("Mul", [count, m], name: "positions"), pad], name: "positions")
            e = b.op1("Add", [e, b.op1("Gather", [posEmb, pos], name: "embeddings")], name: "embeddings")
            e = b.op1("Add", [e, b.op1("Gather", [typeEmb, b.scalarInt(0)], name: "embeddings")], name: "embeddings")
        } else if roberta {
            e = b.op1("Add", [e, b.op1("Gather", [posEmb, c.embedPositions], name: "embeddings")], name: "embeddings")
            e = b.op1("Add", [e, b.op1("Gather", [typeEmb, b.scalarInt(0)], name: "embeddings")], name: "embeddings")
        } else {
            inputs.append(idInput("token_type_ids"))
            e = b.op1("Add", [e, b.op1("Gather", [posEmb, c.embedPositions], name: "embeddings")], name: "embeddings")
            e = b.op1("Add", [e, b.op1("Gather", [typeEmb, "token_type_ids"], name: "embeddings")], name: "embeddings")
        }
        if positionIds { inputs.append(idInput("position_ids")) }
        let (gn, bn) = layerNormNames(b, "embeddings.LayerNorm")
        e = try b.layerNorm(e, "embeddings.LayerNorm", width, eps: eps, weightName: gn, biasName: bn)
        var h = b.op1("Reshape", [e, b.ints([-1, width])], name: "embeddings")
        if width != hidden { h = try b.linear(h, "embeddings_project", in: width, out: hidden) }
        let mask = paddingMask(&b)
        for i in 0..<layers {
            let p = "encoder.layer.\(i)."
            h = try encoderLayer(&b, h, EncoderLayerNames(
                query: p + "attention.self.query", key: p + "attention.self.key", value: p + "attention.self.value",
                out: p + "attention.output.dense", attentionNorm: p + "attention.output.LayerNorm", up: p + "intermediate.dense",
                down: p + "output.dense", outputNorm: p + "output.LayerNorm"), c, mask: mask, hidden: hidden, heads: heads,
                inter: inter, eps: eps, act: act)
        }
        let last = unflatten(&b, h, c, hidden, name: "output")
        var outputs = [(last, "last_hidden_state", batchSeq + [.fixed(hidden)])]
        if b.has("pooler.dense.weight") {
            let first = b.op1("Gather", [last, b.scalarInt(0)], [b.attr("axis", 1)], name: "pooler")
            let pooled = b.op1("Tanh", [try b.linear(first, "pooler.dense", in: hidden, out: hidden)], name: "pooler")
            outputs.append((pooled, "pooler_output", [.symbolic("batch"), .fixed(hidden)]))
        }
        return finish(b, inputs: inputs, outputs: outputs)
    }

    static func distilBERT(_ config: HFConfig, _ w: HFWeights) throws(HFError) -> Graph {
        let hidden = try config.int("dim"), heads = try config.int("n_heads"), layers = try config.int("n_layers", max: 1000)
        let inter = try config.int("hidden_dim"), vocab = try config.int("vocab_size"), maxPos = try config.int("max_position_embeddings")
        let act = try config.string("activation", default: "gelu")
        guard hidden % heads == 0 else { throw .invalid(path: config.path, reason: "dim \(hidden) is not a multiple of n_heads \(heads)") }
        let eps = 1e-12  // DistilBERT's LayerNorms are built with eps=1e-12, not configurable
        var b = try GraphBuilder(config: config, weights: w, probe: "embeddings.word_embeddings.weight", prefixes: ["", "distilbert."])
        let c = common(&b)
        var e = b.op1("Gather", [try b.weight("embeddings.word_embeddings.weight", [vocab, hidden]), "input_ids"], name: "embeddings")
        let posEmb = try b.weight("embeddings.position_embeddings.weight", [maxPos, hidden])
        e = b.op1("Add", [e, b.op1("Gather", [posEmb, c.positions], name: "embeddings")], name: "embeddings")
        e = try b.layerNorm(e, "embeddings.LayerNorm", hidden, eps: eps)
        var h = b.op1("Reshape", [e, b.ints([-1, hidden])], name: "embeddings")
        let mask = paddingMask(&b)
        for i in 0..<layers {
            let p = "transformer.layer.\(i)."
            h = try encoderLayer(&b, h, EncoderLayerNames(
                query: p + "attention.q_lin", key: p + "attention.k_lin", value: p + "attention.v_lin", out: p + "attention.out_lin",
                attentionNorm: p + "sa_layer_norm", up: p + "ffn.lin1", down: p + "ffn.lin2", outputNorm: p + "output_layer_norm"),
                c, mask: mask, hidden: hidden, heads: heads, inter: inter, eps: eps, act: act)
        }
        let last = unflatten(&b, h, c, hidden, name: "output")
        return finish(b, inputs: [idInput("input_ids"), idInput("attention_mask")],
                      outputs: [(last, "last_hidden_state", batchSeq + [.fixed(hidden)])])
    }

    // MARK: decoders

    static func decoderGraph(_ b: GraphBuilder, _ c: Common, logits: String, vocab: Int, cache: CacheLayout, layers: Int, kvHeads: Int, headDim: Int) -> Graph {
        var inputs = [idInput("input_ids"), idInput("attention_mask")]
        if c.fromInput { inputs.append(idInput("position_ids")) }
        var outputs = [(logits, "logits", batchSeq + [.fixed(vocab)])]
        if cache != .none {
            let fixed = cache == .fixed
            inputs[1] = ValueInfo(name: "attention_mask", type: TensorType(dtype: .int64, dims: [.symbolic("batch"), .symbolic(fixed ? "capacity" : "total_sequence")]))
            if fixed { inputs.append(ValueInfo(name: "cache_position", type: TensorType(dtype: .int64, dims: [.symbolic("sequence")]))) }
            let io = cacheIO(b, layers: layers, kvHeads: kvHeads, headDim: headDim, fixed: fixed)
            inputs += io.inputs
            outputs += io.outputs
        }
        return finish(b, inputs: inputs, outputs: outputs)
    }

    /// logits = h·Eᵀ with the output embedding (`lm_head.weight`, or the input embedding when tied).
    static func lmHead(_ b: inout GraphBuilder, _ h: String, _ c: Common, inputEmbedding: String, hidden: Int, vocab: Int,
                       tiedByDefault: Bool) throws(HFError) -> String {
        let tied = try b.config.bool("tie_word_embeddings", default: tiedByDefault)
        let head = tied ? inputEmbedding : try b.weight("lm_head.weight", [vocab, hidden], top: true)
        return unflatten(&b, b.op1("Gemm", [h, head], [b.attr("transB", 1)], name: "lm_head"), c, vocab, name: "lm_head")
    }

    static func gpt2(_ config: HFConfig, _ w: HFWeights, cache: CacheLayout, positionIds: Bool) throws(HFError) -> Graph {
        let hidden = try config.int("n_embd", "hidden_size"), heads = try config.int("n_head", "num_attention_heads")
        let layers = try config.int("n_layer", "num_hidden_layers", max: 1000), vocab = try config.int("vocab_size")
        let maxPos = try config.int("n_positions", "max_position_embeddings")
        let inter = try config.int("n_inner", default: 4 * hidden)
        let eps = try config.double("layer_norm_epsilon", default: 1e-5)
        let act = try config.string("activation_function", default: "gelu_new")
        guard hidden % heads == 0 else { throw .invalid(path: config.path, reason: "n_embd \(hidden) is not a multiple of n_head \(heads)") }
        if try config.bool("scale_attn_by_inverse_layer_idx", default: false) { throw .unsupported(path: config.path, reason: "scale_attn_by_inverse_layer_idx") }
        guard try config.bool("scale_attn_weights", default: true) else { throw .unsupported(path: config.path, reason: "scale_attn_weights false") }
        var b = try GraphBuilder(config: config, weights: w, probe: "wte.weight", prefixes: ["", "transformer."])
        let c = common(&b, cache: cache, positionIds: positionIds)
        let wte = try b.weight("wte.weight", [vocab, hidden])
        var e = b.op1("Gather", [wte, "input_ids"], name: "embeddings")
        e = b.op1("Add", [e, b.op1("Gather", [try b.weight("wpe.weight", [maxPos, hidden]), c.embedPositions], name: "embeddings")], name: "embeddings")
        var h = b.op1("Reshape", [e, b.ints([-1, hidden])], name: "embeddings")
        let mask = causalMask(&b, c, window: nil, extraAxes: 0)
        for i in 0..<layers {
            let p = "h.\(i)."
            let x = try b.layerNorm(h, p + "ln_1", hidden, eps: eps)
            let qkv = try b.conv1D(x, p + "attn.c_attn", in: hidden, out: 3 * hidden)
            let parts = b.op("Split", [qkv, b.ints([hidden, hidden, hidden])], [b.attr("axis", 1)], name: p + "attn", outputs: 3)
            let a = b.attention(q: parts[0], k: parts[1], v: parts[2], bs: c.bs, heads: heads, kvHeads: heads, headDim: hidden / heads,
                                mask: mask, cache: cache != .none ? i : nil, name: p + "attn")
            h = b.op1("Add", [h, try b.conv1D(a, p + "attn.c_proj", in: hidden, out: hidden)], name: p)
            let y = try b.layerNorm(h, p + "ln_2", hidden, eps: eps)
            let up = try b.activation(try b.conv1D(y, p + "mlp.c_fc", in: hidden, out: inter), act, name: p + "mlp")
            h = b.op1("Add", [h, try b.conv1D(up, p + "mlp.c_proj", in: inter, out: hidden)], name: p)
        }
        h = try b.layerNorm(h, "ln_f", hidden, eps: eps)
        let logits = try lmHead(&b, h, c, inputEmbedding: wte, hidden: hidden, vocab: vocab, tiedByDefault: true)
        return decoderGraph(b, c, logits: logits, vocab: vocab, cache: cache, layers: layers, kvHeads: heads, headDim: hidden / heads)
    }

    /// The rotary base: transformers 5's `rope_parameters`, or the older top-level `rope_theta`
    /// and `rope_scaling`; only the default (unscaled) rope is built.
    static func ropeTheta(_ config: HFConfig) throws(HFError) -> Double {
        for key in ["rope_parameters", "rope_scaling"] {
            guard let p = config.json[key], !p.isNull else { continue }
            guard case .object = p else { throw .invalid(path: config.path, reason: "\"\(key)\" is \(p.kindDescription), expected an object") }
            let type = p["rope_type"]?.stringValue ?? p["type"]?.stringValue ?? "default"
            guard type == "default" else { throw .unsupported(path: config.path, reason: "\(key).rope_type '\(type)' (only the default rope is built)") }
            if let f = p["partial_rotary_factor"]?.doubleValue, f != 1 { throw .unsupported(path: config.path, reason: "partial_rotary_factor \(f)") }
            if let t = p["rope_theta"] {
                guard let d = t.doubleValue, d > 0 else { throw .invalid(path: config.path, reason: "\(key).rope_theta is not a positive number") }
                return d
            }
        }
        return try config.double("rope_theta", default: 10000)
    }

    static func llama(_ config: HFConfig, _ w: HFWeights, cache: CacheLayout, positionIds: Bool) throws(HFError) -> Graph {
        let hidden = try config.int("hidden_size"), heads = try config.int("num_attention_heads")
        let kvHeads = try config.int("num_key_value_heads", default: heads)
        let layers = try config.int("num_hidden_layers", max: 1000), inter = try config.int("intermediate_size")
        let vocab = try config.int("vocab_size"), headDim = try config.int("head_dim", default: hidden / heads)
        let eps = try config.double("rms_norm_eps", default: 1e-6)
        let act = try config.string("hidden_act", default: "silu")
        let qwen = config.modelType == "qwen2"
        let qkvBias = qwen ? true : try config.bool("attention_bias", default: false)
        let mlpBias = try config.bool("mlp_bias", default: false)
        guard heads % kvHeads == 0, headDim % 2 == 0 else {
            throw .invalid(path: config.path, reason: "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads), or head_dim \(headDim) is odd")
        }
        var window: Int? = nil
        let slides = config.modelType == "mistral" ? true : try config.bool("use_sliding_window", default: false)
        if slides {
            if let sw = config.json["sliding_window"], !sw.isNull { window = try config.int("sliding_window") }
        }
        let theta = try ropeTheta(config)
        var b = try GraphBuilder(config: config, weights: w, probe: "embed_tokens.weight", prefixes: ["model.", ""])
        let c = common(&b, cache: cache, positionIds: positionIds)
        // inv_freq = 1 / θ^(2i/d) and the angles position·inv_freq, as transformers computes them in float32
        let f32 = Int(DType.float32.onnxCode)
        let even = b.op1("Cast", [b.op1("Range", [b.scalarInt(0), b.scalarInt(headDim), b.scalarInt(2)], name: "rope")], [b.attr("to", f32)], name: "rope")
        let expo = b.op1("Div", [even, b.scalar(Float(headDim))], name: "rope")
        let invFreq = b.op1("Reciprocal", [b.op1("Pow", [b.scalar(Float(theta)), expo], name: "rope")], name: "rope")
        let pos = b.op1("Unsqueeze", [b.op1("Cast", [c.embedPositions], [b.attr("to", f32)], name: "rope"), b.ints([-1])], name: "rope")
        let freqs = b.op1("Mul", [pos, invFreq], name: "rope")
        var angles = b.op1("Concat", [freqs, freqs], [b.attr("axis", -1)], name: "rope")
        if c.fromInput {
            // [batch, seq, dim] -> [batch, 1, seq, dim], against the heads of k (and of q, see `attention`)
            angles = b.op1("Unsqueeze", [angles, b.ints([1])], name: "rope")
        }
        let rope = (b.op1("Cos", [angles], name: "rope"), b.op1("Sin", [angles], name: "rope"))

        let embed = try b.weight("embed_tokens.weight", [vocab, hidden])
        let e = b.op1("Gather", [embed, "input_ids"], name: "embeddings")
        var h = b.op1("Reshape", [e, b.ints([-1, hidden])], name: "embeddings")
        let mask = causalMask(&b, c, window: window, extraAxes: heads == kvHeads ? 0 : 1)
        for i in 0..<layers {
            let p = "layers.\(i)."
            let x = try b.rmsNorm(h, p + "input_layernorm", hidden, eps: eps)
            let q = try b.linear(x, p + "self_attn.q_proj", in: hidden, out: heads * headDim, bias: qkvBias)
            let k = try b.linear(x, p + "self_attn.k_proj", in: hidden, out: kvHeads * headDim, bias: qkvBias)
            let v = try b.linear(x, p + "self_attn.v_proj", in: hidden, out: kvHeads * headDim, bias: qkvBias)
            let a = b.attention(q: q, k: k, v: v, bs: c.bs, heads: heads, kvHeads: kvHeads, headDim: headDim, mask: mask, rope: rope,
                                ropePerRow: c.fromInput, cache: cache != .none ? i : nil, name: p + "self_attn")
            let o = try b.linear(a, p + "self_attn.o_proj", in: heads * headDim, out: hidden, bias: qkvBias && !qwen)
            h = b.op1("Add", [h, o], name: p)
            let y = try b.rmsNorm(h, p + "post_attention_layernorm", hidden, eps: eps)
            let gate = try b.activation(try b.linear(y, p + "mlp.gate_proj", in: hidden, out: inter, bias: mlpBias), act, name: p + "mlp")
            let up = try b.linear(y, p + "mlp.up_proj", in: hidden, out: inter, bias: mlpBias)
            let down = try b.linear(b.op1("Mul", [gate, up], name: p + "mlp"), p + "mlp.down_proj", in: inter, out: hidden, bias: mlpBias)
            h = b.op1("Add", [h, down], name: p)
        }
        h = try b.rmsNorm(h, "norm", hidden, eps: eps)
        let logits = try lmHead(&b, h, c, inputEmbedding: embed, hidden: hidden, vocab: vocab, tiedByDefault: false)
        return decoderGraph(b, c, logits: logits, vocab: vocab, cache: cache, layers: layers, kvHeads: kvHeads, headDim: headDim)
    }
}
