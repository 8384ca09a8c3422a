import DLGraph
import DLTensor

/// Builds an IR graph op by op for one architecture: fresh value names, constants, and weights
/// bound by their Hugging Face names (the file's own tensors, mapped, never copied; a weight of
/// another float type is cast to float32 in the graph).
struct GraphBuilder {
    let config: HFConfig
    let weights: HFWeights
    /// The prefix the file puts before the base model's names ("bert.", "model.", "transformer.", or "").
    var prefix: String
    var nodes: [Node] = []
    var initializers = NamedTensors()
    /// Decoders with a KV cache: each layer's (present key, present value), in layer order.
    var presents: [(String, String)] = []
    /// A fixed-capacity cache: the slot each batch row's new keys and values are written from
    /// ([batch] int64); nil when the cache grows by concatenation.
    var cacheWrite: String?
    private var counter = 0
    /// The `Constant` nodes already added, by output name (each constant is made once).
    private var emittedConstants = Set<String>()

    init(config: HFConfig, weights: HFWeights, probe: String, prefixes: [String]) throws(HFError) {
        self.config = config
        self.weights = weights
        guard let p = prefixes.first(where: { weights.tensors.contains($0 + probe) }) else {
            throw .weights(path: weights.path, reason: "no tensor '\(probe)' (under any of the prefixes \(prefixes.map { "'\($0)'" }.joined(separator: ", "))): not a \(config.modelType) checkpoint")
        }
        prefix = p
    }

    mutating func fresh(_ base: String) -> String {
        counter += 1
        return "\(base)_\(counter)"
    }

    mutating func op(_ type: String, _ inputs: [String], _ attrs: [Attribute] = [], name: String, outputs: Int = 1) -> [String] {
        let outs = (0..<outputs).map { _ in fresh("\(name)/\(type)") }
        nodes.append(Node(name: fresh(name + "/" + type), opType: type, inputs: inputs, outputs: outs, attributes: attrs))
        return outs
    }

    mutating func op1(_ type: String, _ inputs: [String], _ attrs: [Attribute] = [], name: String) -> String {
        op(type, inputs, attrs, name: name)[0]
    }

    mutating func constant(_ name: String, _ t: Tensor) -> String {
        if initializers[name] == nil { initializers[name] = t }
        return name
    }

    mutating func ints(_ v: [Int]) -> String {
        constant("const/i64_" + v.map(String.init).joined(separator: "_").replacingOccurrences(of: "-", with: "m"),
                 Tensor(shape: [v.count], scalars: v.map(Int64.init)))
    }

    /// A float constant is a `Constant` node rather than an initializer: float initializers are
    /// what training takes as parameters (`dltrain` would otherwise train GELU's 0.5 or the mask's
    /// minimum); the runtime folds it back into an initializer.
    mutating func scalar(_ v: Float) -> String {
        let name = "const/f32_\(v.bitPattern)"
        if emittedConstants.insert(name).inserted {
            nodes.append(Node(name: name, opType: "Constant", inputs: [], outputs: [name],
                              attributes: [Attribute(name: "value", value: .tensor(Tensor(scalar: v)))]))
        }
        return name
    }

    mutating func scalarInt(_ v: Int) -> String {
        constant("const/i64_scalar_\(v)".replacingOccurrences(of: "-", with: "m"), Tensor(scalar: Int64(v)))
    }

    /// Whether the checkpoint has `name` (under the base prefix, or at the top when `top`).
    func has(_ name: String, top: Bool = false) -> Bool {
        weights.tensors.contains(top ? name : prefix + name)
    }

    /// The weight `name` with the expected `shape`, as a graph value (float32).
    mutating func weight(_ name: String, _ shape: [Int], top: Bool = false) throws(HFError) -> String {
        let full = top ? name : prefix + name
        guard let t = weights.tensors[full] else { throw .weights(path: weights.path, reason: "tensor '\(full)' is missing") }
        guard t.shape == shape else {
            throw .weights(path: weights.path, reason: "tensor '\(full)' has shape \(t.shape), the config gives \(shape)")
        }
        guard t.dtype.isFloatingPoint else { throw .weights(path: weights.path, reason: "tensor '\(full)' is \(t.dtype), expected a float type") }
        initializers[full] = t
        if t.dtype == .float32 { return full }
        return op1("Cast", [full], [Attribute(name: "to", value: .int(Int(DType.float32.onnxCode)))], name: full)
    }

    func attr(_ name: String, _ v: Int) -> Attribute { Attribute(name: name, value: .int(v)) }
    func attr(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v)) }
    func attr(_ name: String, _ v: Float) -> Attribute { Attribute(name: name, value: .float(v)) }

    // MARK: blocks shared by the architectures (hidden states are 2-D: [batch·seq, hidden])

    /// nn.Linear: x·Wᵀ (+ b), W stored [out, in] as PyTorch keeps it.
    mutating func linear(_ x: String, _ name: String, in i: Int, out o: Int, bias: Bool = true) throws(HFError) -> String {
        let w = try weight(name + ".weight", [o, i])
        var inputs = [x, w]
        if bias { inputs.append(try weight(name + ".bias", [o])) }
        return op1("Gemm", inputs, [attr("transB", 1)], name: name)
    }

    /// GPT-2's Conv1D: x·W + b, W stored [in, out].
    mutating func conv1D(_ x: String, _ name: String, in i: Int, out o: Int) throws(HFError) -> String {
        let w = try weight(name + ".weight", [i, o]), b = try weight(name + ".bias", [o])
        return op1("Gemm", [x, w, b], name: name)
    }

    mutating func layerNorm(_ x: String, _ name: String, _ size: Int, eps: Double, weightName: String = "weight", biasName: String = "bias") throws(HFError) -> String {
        let g = try weight("\(name).\(weightName)", [size]), b = try weight("\(name).\(biasName)", [size])
        return op1("LayerNormalization", [x, g, b], [attr("axis", -1), attr("epsilon", Float(eps))], name: name)
    }

    /// Llama's RMSNorm: w · x / sqrt(mean(x²) + eps), written out in IR ops.
    mutating func rmsNorm(_ x: String, _ name: String, _ size: Int, eps: Double) throws(HFError) -> String {
        let g = try weight(name + ".weight", [size])
        let sq = op1("Mul", [x, x], name: name)
        let mean = op1("ReduceMean", [sq, ints([-1])], [attr("keepdims", 1)], name: name)
        let root = op1("Sqrt", [op1("Add", [mean, scalar(Float(eps))], name: name)], name: name)
        let normed = op1("Mul", [x, op1("Reciprocal", [root], name: name)], name: name)
        return op1("Mul", [g, normed], name: name)
    }

    /// The activation transformers names `act` (ACT2FN), in IR ops.
    mutating func activation(_ x: String, _ act: String, name: String) throws(HFError) -> String {
        switch act {
        case "gelu":
            // 0.5·x·(1 + erf(x/√2))
            let e = op1("Erf", [op1("Div", [x, scalar(Float(2.0.squareRoot()))], name: name)], name: name)
            return op1("Mul", [op1("Mul", [x, scalar(0.5)], name: name), op1("Add", [e, scalar(1)], name: name)], name: name)
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast":
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let cube = op1("Mul", [op1("Mul", [x, x], name: name), x], name: name)
            let inner = op1("Add", [x, op1("Mul", [cube, scalar(0.044715)], name: name)], name: name)
            let t = op1("Tanh", [op1("Mul", [inner, scalar(Float((2.0 / Double.pi).squareRoot()))], name: name)], name: name)
            return op1("Mul", [op1("Mul", [x, scalar(0.5)], name: name), op1("Add", [t, scalar(1)], name: name)], name: name)
        case "relu": return op1("Relu", [x], name: name)
        case "silu", "swish": return op1("Mul", [x, op1("Sigmoid", [x], name: name)], name: name)
        case "tanh": return op1("Tanh", [x], name: name)
        default: throw .unsupported(path: config.path, reason: "activation '\(act)'")
        }
    }

    /// Scaled dot-product attention over projected q, k, v ([batch·seq, heads·dim] each, k and v
    /// with `kvHeads` heads), `bs` the [batch, seq] shape value, `mask` additive and broadcastable
    /// to the scores. Grouped-query attention (kvHeads < heads) groups the query heads by the key
    /// head they share and lets MatMul broadcast, so keys and values are never repeated.
    /// `rope`: (cos, sin) of shape [seq, headDim] applied to q and k first, or [batch, 1, seq,
    /// headDim] with `ropePerRow` (positions from a `position_ids` input). With `cache`, the
    /// layer's keys and values continue `past_key_values.<layer>.key/value` ([batch, kvHeads,
    /// past, headDim], the layout optimum and ONNX Runtime GenAI use) and are given out whole as
    /// `present.<layer>.key/value`; with `cacheWrite`, they are written into the fixed-capacity
    /// past at that slot instead (the present has the past's shape).
    mutating func attention(q: String, k: String, v: String, bs: String, heads: Int, kvHeads: Int, headDim: Int,
                            mask: String, rope: (String, String)? = nil, ropePerRow: Bool = false, cache layer: Int? = nil,
                            name: String) -> String {
        let groups = heads / kvHeads
        let grouped = groups > 1
        func split(_ x: String, _ dims: [Int], _ perm: [Int]) -> String {
            let shape = op1("Concat", [bs, ints(dims)], [attr("axis", 0)], name: name)
            return op1("Transpose", [op1("Reshape", [x, shape], name: name)], [attr("perm", perm)], name: name)
        }
        // q: [b, kv, g, s, d] when grouped, else [b, heads, s, d]; k, v: [b, kv, s, d]
        var qh = grouped ? split(q, [kvHeads, groups, headDim], [0, 2, 3, 1, 4]) : split(q, [heads, headDim], [0, 2, 1, 3])
        var kh = split(k, [kvHeads, headDim], [0, 2, 1, 3])
        var vh = split(v, [kvHeads, headDim], [0, 2, 1, 3])
        if let (cos, sin) = rope {
            // grouped q has one more axis than k: [b, kv, g, s, d]
            var (qcos, qsin) = (cos, sin)
            if grouped && ropePerRow {
                qcos = op1("Unsqueeze", [cos, ints([2])], name: name)
                qsin = op1("Unsqueeze", [sin, ints([2])], name: name)
            }
            qh = applyRope(qh, cos: qcos, sin: qsin, headDim: headDim, name: name)
            kh = applyRope(kh, cos: cos, sin: sin, headDim: headDim, name: name)
        }
        if let layer, let write = cacheWrite {
            kh = op1("TensorScatter", ["past_key_values.\(layer).key", kh, write], [attr("axis", 2)], name: name)
            vh = op1("TensorScatter", ["past_key_values.\(layer).value", vh, write], [attr("axis", 2)], name: name)
            presents.append((kh, vh))
        } else if let layer {
            kh = op1("Concat", ["past_key_values.\(layer).key", kh], [attr("axis", 2)], name: name)
            vh = op1("Concat", ["past_key_values.\(layer).value", vh], [attr("axis", 2)], name: name)
            presents.append((kh, vh))
        }
        if grouped {
            kh = op1("Unsqueeze", [kh, ints([2])], name: name)
            vh = op1("Unsqueeze", [vh, ints([2])], name: name)
        }
        let rank = grouped ? 5 : 4
        var kperm = Array(0..<rank)
        kperm.swapAt(rank - 1, rank - 2)
        let kt = op1("Transpose", [kh], [attr("perm", kperm)], name: name)
        let scores = op1("MatMul", [qh, kt], name: name)
        let scaled = op1("Mul", [scores, scalar(Float(1.0 / Double(headDim).squareRoot()))], name: name)
        let masked = op1("Add", [scaled, mask], name: name)
        let p = op1("Softmax", [masked], [attr("axis", -1)], name: name)
        let ctx = op1("MatMul", [p, vh], name: name)
        let back = op1("Transpose", [ctx], [attr("perm", grouped ? [0, 3, 1, 2, 4] : [0, 2, 1, 3])], name: name)
        return op1("Reshape", [back, ints([-1, heads * headDim])], name: name)
    }

    /// x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁] over the two halves of the last axis.
    mutating func applyRope(_ x: String, cos: String, sin: String, headDim: Int, name: String) -> String {
        let half = headDim / 2
        let x1 = op1("Slice", [x, ints([0]), ints([half]), ints([-1])], name: name)
        let x2 = op1("Slice", [x, ints([half]), ints([headDim]), ints([-1])], name: name)
        let rotated = op1("Concat", [op1("Neg", [x2], name: name), x1], [attr("axis", -1)], name: name)
        return op1("Add", [op1("Mul", [x, cos], name: name), op1("Mul", [rotated, sin], name: name)], name: name)
    }
}
