import DLTensor

/// Folds an activation into the `Conv`, `Gemm`, bias-folded `MatMul` or activation-less
/// `FusedConvAdd` that feeds it:
/// `Relu(Conv(x))` becomes one `ai.dlkit.FusedConv` (and `Gemm` one `FusedGemm`) with
/// `activation = "Relu"`, so the kernel applies it while the result is still in cache.
///
/// The activations: Relu, LeakyRelu (`activation_alpha`; a `Max` with a constant after it is
/// its floor, `activation_beta`: openWakeWord's `maximum(leaky_relu(x), -0.4)`), Clip with constant bounds
/// (`activation_alpha`/`activation_beta` = min/max), Sigmoid, HardSigmoid (alpha, beta), HardSwish,
/// SiLU written as `Mul(x, Sigmoid(x))` (torch's export of `nn.SiLU`, YOLO's activation),
/// fused as `Silu`, GELU written out with Erf after a Gemm or MatMul (BERT's, `geluChain`),
/// fused as `Gelu`, and after a Conv a PRelu with a constant slope per channel (`PRelu` with
/// `activation_slopes`: MediaPipe's face and palm models).
///
/// Only when the base op's output is read by the activation alone (for SiLU: by exactly the
/// Sigmoid and the Mul) and is not a graph output. The fused ops exist for the runtime only
/// (`FusedOps`); exporters never see them because the runtime optimises a private copy.
package enum FuseActivation: GraphPass {
    public static let name = "fuse-activation"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        let readersOf = graph.readerNodes()
        var remove = Set<Int>()
        var changed = false
        // GELU written out (BERT-family exports): fused first, as its chain starts with two readers.
        for (p, base) in graph.nodes.enumerated() where base.outputs.count == 1 && isGELUBase(base) {
            let x = base.outputs[0]
            guard !outputs.contains(x), let (chain, out) = geluChain(from: x, in: graph, readers: readers, readersOf: readersOf,
                                                                      outputs: outputs),
                  chain.allSatisfy({ !remove.contains($0) }) else { continue }
            let opType = base.opType == "Gemm" ? "FusedGemm" : "FusedMatMul"
            graph.nodes[p] = Node(name: base.name, opType: opType, domain: FusedOps.domain, inputs: base.inputs, outputs: [out],
                                  attributes: base.attributes + [Attribute(name: "activation", value: .string("Gelu"))],
                                  docString: base.docString)
            remove.formUnion(chain)
            changed = true
        }
        for (i, act) in graph.nodes.enumerated() where OpSet.isDefaultDomain(act) && !remove.contains(i) {
            guard act.outputs.count == 1, let x = act.input(0), !outputs.contains(x),
                  let p = producer[x], !remove.contains(p) else { continue }
            var attrs: [Attribute]
            var fusedNodes: [Int] = [i]
            var out = act.outputs[0]
            if act.opType == "Sigmoid", readers[x] == 2, readers[out] == 1,
               let m = readersOf[out]?.first, !remove.contains(m), readersOf[x]?.contains(m) == true,
               OpSet.isDefaultDomain(graph.nodes[m]), graph.nodes[m].opType == "Mul",
               Set(graph.nodes[m].inputs) == [x, out], graph.nodes[m].inputs.count == 2 {
                // SiLU: Mul(x, Sigmoid(x)) in either order.
                attrs = [Attribute(name: "activation", value: .string("Silu"))]
                fusedNodes.append(m)
                out = graph.nodes[m].outputs[0]
            } else if readers[x] == 1, FusedOps.takesFloor(graph.nodes[p]),
                      let floor = FusedOps.constantFloor(of: act, in: graph, rank: FusedOps.outputRank(of: graph.nodes[p], in: graph)) {
                // Max(LeakyRelu(...), c) after a fused op: the floor of its LeakyRelu.
                let base = graph.nodes[p]
                graph.nodes[p] = Node(name: base.name, opType: base.opType, domain: base.domain, inputs: base.inputs, outputs: [out],
                                      attributes: base.attributes + [Attribute(name: "activation_beta", value: .float(floor))],
                                      docString: base.docString)
                remove.insert(i)
                changed = true
                continue
            } else {
                guard readers[x] == 1,
                      let a = FusedOps.activationAttributes(of: act, in: graph, channels: FusedOps.convChannels(graph.nodes[p], in: graph))
                else { continue }
                attrs = a
            }
            let base = graph.nodes[p]
            // A fused op without an activation yet takes one as it is (a FusedConvAdd whose
            // activation became fusable only after it was made: a PRelu whose slope another pass
            // laid out channels first).
            let isFused = base.domain == FusedOps.domain && ["FusedMatMul", "FusedConvAdd"].contains(base.opType)
            guard base.outputs.count == 1,
                  isFused || (OpSet.isDefaultDomain(base) && (base.opType == "Conv" || base.opType == "Gemm")),
                  !base.attributes.contains(where: { $0.name == "activation" }) else { continue }
            let opType = isFused ? base.opType : base.opType == "Conv" ? "FusedConv" : "FusedGemm"
            graph.nodes[p] = Node(name: base.name, opType: opType, domain: FusedOps.domain, inputs: base.inputs,
                                  outputs: [out], attributes: base.attributes + attrs, docString: base.docString)
            remove.formUnion(fusedNodes)
            changed = true
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }

    /// A Gemm, or a bias-folded MatMul, with no activation yet.
    static func isGELUBase(_ n: Node) -> Bool {
        if n.domain == FusedOps.domain && n.opType == "FusedMatMul" { return !n.attributes.contains { $0.name == "activation" } }
        return OpSet.isDefaultDomain(n) && n.opType == "Gemm"
    }

    /// The nodes of `gelu(x) = x · ½ · (1 + erf(x / √2))` written out on `x`, and the output
    /// holding it, in the two orders exporters write: `Mul(Mul(x, 0.5), Add(Erf(Div(x, √2)), 1))`
    /// (ours, from `DLHuggingFace`) and `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)` (torch's);
    /// the scaling may be `Mul(x, 1/√2)`, any commutative op's inputs in either order. Only
    /// when `x` has exactly these two readers and every inner value one reader and no graph output.
    static func geluChain(from x: String, in graph: Graph, readers: [String: Int], readersOf: [String: [Int]],
                          outputs: Set<String>) -> ([Int], String)? {
        func constant(_ name: String, _ v: Float) -> Bool {
            guard let t = graph.constantInitializer(name, dtype: .float32), t.elementCount == 1,
                  let c = t.scalars(as: Float.self).first else { return false }
            return abs(c - v) <= 1e-6 * max(1, abs(v))
        }
        /// Node `i` as `op(v, other)` in either order: the other input.
        func other(_ i: Int, _ op: String, _ v: String) -> String? {
            let n = graph.nodes[i]
            guard OpSet.isDefaultDomain(n), n.opType == op, n.inputs.count == 2, n.outputs.count == 1 else { return nil }
            if n.inputs[0] == v && n.inputs[1] != v { return n.inputs[1] }
            if n.inputs[1] == v && n.inputs[0] != v && op != "Div" { return n.inputs[0] }
            return nil
        }
        /// The single reader of value `v` (not a graph output).
        func onlyReader(_ v: String) -> Int? {
            guard readers[v] == 1, !outputs.contains(v), let r = readersOf[v], r.count == 1 else { return nil }
            return r[0]
        }
        guard readers[x] == 2, let xr = readersOf[x], xr.count == 2 else { return nil }
        for (d, m) in [(xr[0], xr[1]), (xr[1], xr[0])] {
            let scaled = other(d, "Div", x).map { constant($0, 1.41421356) } ?? other(d, "Mul", x).map { constant($0, 0.707106781) }
            guard scaled == true, let dOut = graph.nodes[d].outputs.first, let e = onlyReader(dOut),
                  OpSet.isDefaultDomain(graph.nodes[e]), graph.nodes[e].opType == "Erf",
                  let eOut = graph.nodes[e].outputs.first, let a = onlyReader(eOut),
                  let one = other(a, "Add", eOut), constant(one, 1),
                  let aOut = graph.nodes[a].outputs.first, let mOut = graph.nodes[m].outputs.first,
                  let f = onlyReader(mOut), let fOut = graph.nodes[f].outputs.first else { continue }
            if let half = other(m, "Mul", x), constant(half, 0.5), onlyReader(aOut) == f, other(f, "Mul", mOut) == aOut {
                return ([d, e, a, m, f], fOut)  // (x · ½) · (erf + 1)
            }
            if other(m, "Mul", x) == aOut, let half = other(f, "Mul", mOut), constant(half, 0.5) {
                return ([d, e, a, m, f], fOut)  // (x · (erf + 1)) · ½
            }
        }
        return nil
    }
}

/// Ops the passes introduce, in the `ai.dlkit` domain: a base op with an activation applied to
/// its output. Types are inferred as for the base op.
package enum FusedOps {
    public static let domain = "ai.dlkit"

    /// The activations a fused op may carry.
    public static let activations: Set<String> = ["Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Silu", "Gelu", "PRelu"]

    /// The attributes a fused node carries for the single-input activation `act`
    /// (`activation`, and `activation_alpha`/`activation_beta` for its parameters), or nil when
    /// `act` is no activation a fused kernel applies: another op, or a Clip whose bounds are not
    /// constant scalars of the graph (initializers) or are out of order.
    ///
    /// A PRelu with a constant float32 slope per channel is one when the base is a convolution
    /// (`channels`: its output channels and rank): `activation = "PRelu"` with the slopes in
    /// `activation_slopes`; with one slope it is a LeakyRelu.
    public static func activationAttributes(of act: Node, in graph: Graph, channels: (count: Int, rank: Int)? = nil) -> [Attribute]? {
        guard OpSet.isDefaultDomain(act), act.outputs.count == 1 else { return nil }
        func named(_ op: String, _ params: [Float] = []) -> [Attribute] {
            [Attribute(name: "activation", value: .string(op))]
                + zip(["activation_alpha", "activation_beta"], params).map { Attribute(name: $0, value: .float($1)) }
        }
        switch act.opType {
        case "Relu", "Sigmoid", "HardSwish":
            return act.inputs.count == 1 ? named(act.opType) : nil
        case "LeakyRelu":
            guard act.inputs.count == 1, let alpha = try? act.float("alpha", default: 0.01) else { return nil }
            return named("LeakyRelu", [alpha])
        case "HardSigmoid":
            guard act.inputs.count == 1, let a = try? act.float("alpha", default: 0.2),
                  let b = try? act.float("beta", default: 0.5) else { return nil }
            return named("HardSigmoid", [a, b])
        case "Clip":
            // Bounds are inputs (an empty name for none).
            func bound(_ k: Int, default d: Float) -> Float? {
                guard let name = act.input(k) else { return d }
                guard let t = graph.constantInitializer(name, dtype: .float32), t.elementCount == 1 else { return nil }
                return t.scalars(as: Float.self).first
            }
            guard act.inputs.count >= 1, act.inputs.count <= 3,
                  let lo = bound(1, default: -.greatestFiniteMagnitude),
                  let hi = bound(2, default: .greatestFiniteMagnitude),
                  lo <= hi else { return nil }
            return named("Clip", [lo, hi])
        case "PRelu":
            guard let (c, r) = channels, r >= 2, act.inputs.count == 2,
                  let slope = graph.constantInitializer(act.inputs[1], dtype: .float32), slope.rank <= r else { return nil }
            let v = slope.scalars(as: Float.self)
            if v.count == 1 { return named("LeakyRelu", v) }
            // The slope broadcasts against the output [N, C, ...] along the channels alone.
            let aligned = [Int](repeating: 1, count: r - slope.rank) + slope.shape
            guard v.count == c, aligned[1] == c, aligned.enumerated().allSatisfy({ $0.offset == 1 || $0.element == 1 }) else { return nil }
            return [Attribute(name: "activation", value: .string("PRelu")), Attribute(name: "activation_slopes", value: .floats(v))]
        default:
            return nil
        }
    }

    /// The output channels and rank of a convolution, known without running: from its weight
    /// when that is an initializer, else from its bias and `kernel_shape` (a float16 weight
    /// stays a Cast the plan evaluates once). What a PRelu fused into it needs
    /// (``activationAttributes(of:in:channels:)``).
    static func convChannels(_ conv: Node, in graph: Graph) -> (count: Int, rank: Int)? {
        let isConv = OpSet.isDefaultDomain(conv) && conv.opType == "Conv"
        guard isConv || (conv.domain == domain && conv.opType == "FusedConvAdd"), conv.inputs.count >= 2 else { return nil }
        if let w = graph.constantInitializer(conv.inputs[1]), w.rank >= 3 { return (w.shape[0], w.rank) }
        guard conv.inputs.count >= 3, let b = graph.constantInitializer(conv.inputs[2]), b.rank == 1,
              let kernel = (try? conv.ints("kernel_shape")) ?? nil, !kernel.isEmpty else { return nil }
        return (b.elementCount, kernel.count + 2)
    }

    /// c of `Max(x, c)` with two inputs, c a one-value float32 initializer of rank at most 1 or
    /// `rank` (x's, when known: no broadcast to a larger rank); nil otherwise.
    static func constantFloor(of act: Node, in graph: Graph, rank: Int?) -> Float? {
        guard OpSet.isDefaultDomain(act), act.opType == "Max", act.inputs.count == 2, act.outputs.count == 1,
              let t = graph.constantInitializer(act.inputs[1], dtype: .float32), t.elementCount == 1,
              t.rank <= max(1, rank ?? 1) else { return nil }
        return t.scalars(as: Float.self).first.flatMap { $0.isNaN ? nil : $0 }
    }

    /// The rank of a fused convolution's or Gemm's output (a convolution's is its weight's).
    static func outputRank(of n: Node, in graph: Graph) -> Int? {
        switch n.opType {
        case "FusedConv": n.inputs.count > 1 ? graph.constantInitializer(n.inputs[1])?.rank : nil
        case "FusedGemm": 2
        default: nil
        }
    }

    /// A fused op whose LeakyRelu has no floor yet (`activation_beta`): a Max with a constant
    /// after it becomes that floor.
    static func takesFloor(_ n: Node) -> Bool {
        guard n.domain == domain, ["FusedConv", "FusedGemm", "FusedMatMul"].contains(n.opType), n.outputs.count == 1,
              !n.attributes.contains(where: { $0.name == "activation_beta" }) else { return false }
        return n.attributes.contains {
            if $0.name == "activation", case .string("LeakyRelu") = $0.value { true } else { false }
        }
    }

    static var schemas: [OpSchema] {
        [fused("FusedConv", base: "Conv", inputs: 2...3), fused("FusedGemm", base: "Gemm", inputs: 2...3), fusedMatMul,
         fusedAttention,
         FuseConvAdd.schema, FuseConvPool.schema, FuseQuantizeDequantize.schema, FuseQuantizedLookup.schema, FuseRequantize.schema, FuseRequantize.fixedPointSchema, FuseRequantize.centredSumSchema, FuseRequantize.fixedPointAddSchema, FuseConvIntegerNHWC.schema, FoldOneHotMatMul.schema]
    }

    /// `FusedMatMul(A, W, bias)`: `MatMul(A, W) + bias` with W `[K, N]` and bias `[N]` or `[N]`
    /// after leading ones (`[1, 1, N]`: broadcast as the Add it replaced, so a bias of more dims
    /// than the product adds leading ones to the result), then the optional activation.
    static var fusedMatMul: OpSchema {
        OpSchema("FusedMatMul", inputs: 3...3) { ctx throws(GraphError) in
            let act = try ctx.node.string("activation", default: "")
            guard act.isEmpty || activations.contains(act) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "activation", expected: "one of \(activations.sorted())", actual: act)
            }
            let w = try ctx.type(1), bias = try ctx.type(2)
            if let dw = w.dims, let db = bias.dims {
                guard dw.count == 2, let last = db.last, db.dropLast().allSatisfy({ $0.value == 1 }),
                      dw[1].value == nil || last.value == nil || dw[1] == last else {
                    throw .shapeMismatch(node: ctx.node.displayName, reason: "FusedMatMul needs W [K, N] and a bias [N] (after leading ones), got \(w) and \(bias)")
                }
            }
            guard let schema = OpSet.schemas["MatMul"] else { return [nil] }
            let product = try schema.infer(ctx)
            guard let t = product.first ?? nil, let dims = t.dims, let rank = bias.dims?.count, rank > dims.count else { return product }
            return [TensorType(dtype: t.dtype, dims: [Dim](repeating: .fixed(1), count: rank - dims.count) + dims)]
        }
    }

    static func fused(_ name: String, base: String, inputs: ClosedRange<Int>) -> OpSchema {
        OpSchema(name, inputs: inputs) { ctx throws(GraphError) in
            let act = try ctx.node.string("activation", default: "")
            guard activations.contains(act) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "activation", expected: "one of \(activations.sorted())", actual: act)
            }
            guard let schema = OpSet.schemas[base] else { return [nil] }
            return try schema.infer(ctx)
        }
    }
}
