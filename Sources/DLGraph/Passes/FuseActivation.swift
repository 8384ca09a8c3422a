import DLTensor

/// Folds an activation into the `Conv` or `Gemm` that feeds it: `Relu(Conv(x))` becomes one
/// `ai.dlkit.FusedConv` (and `Gemm` one `FusedGemm`) with `activation = "Relu"`, so the kernel
/// applies it while the result is still in cache. `LeakyRelu` carries its `alpha`.
///
/// Only when the Conv/Gemm output has that one reader and is not a graph output. The fused ops
/// exist for the runtime only (`FusedOps`); exporters never see them because the runtime
/// optimises a private copy of the graph.
public enum FuseActivation: GraphPass {
    public static let name = "fuse-activation"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        var remove = Set<Int>()
        var changed = false
        for (i, act) in graph.nodes.enumerated() where OpSet.isDefaultDomain(act) {
            guard act.opType == "Relu" || act.opType == "LeakyRelu", act.inputs.count == 1,
                  act.outputs.count == 1, let x = act.input(0), readers[x] == 1,
                  let p = producer[x], !remove.contains(p) else { continue }
            let base = graph.nodes[p]
            if base.domain == FusedOps.domain, base.opType == "FusedMatMul", base.outputs.count == 1,
               !base.attributes.contains(where: { $0.name == "activation" }) {
                // A MatMul with its bias already folded in (FuseMatMulAdd) takes the activation too.
                var attrs = base.attributes
                attrs.append(Attribute(name: "activation", value: .string(act.opType)))
                if act.opType == "LeakyRelu" {
                    guard let alpha = try? act.float("alpha", default: 0.01) else { continue }
                    attrs.append(Attribute(name: "activation_alpha", value: .float(alpha)))
                }
                graph.nodes[p] = Node(name: base.name, opType: base.opType, domain: base.domain, inputs: base.inputs,
                                      outputs: act.outputs, attributes: attrs, docString: base.docString)
                remove.insert(i)
                changed = true
                continue
            }
            guard OpSet.isDefaultDomain(base), base.opType == "Conv" || base.opType == "Gemm",
                  base.outputs.count == 1 else { continue }
            var attrs = base.attributes
            attrs.append(Attribute(name: "activation", value: .string(act.opType)))
            if act.opType == "LeakyRelu" {
                guard let alpha = try? act.float("alpha", default: 0.01) else { continue }
                attrs.append(Attribute(name: "activation_alpha", value: .float(alpha)))
            }
            graph.nodes[p] = Node(name: base.name, opType: base.opType == "Conv" ? "FusedConv" : "FusedGemm",
                                  domain: FusedOps.domain, inputs: base.inputs, outputs: act.outputs,
                                  attributes: attrs, docString: base.docString)
            remove.insert(i)
            changed = true
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }
}

/// Ops the passes introduce, in the `ai.dlkit` domain: a base op with an activation applied to
/// its output. Types are inferred as for the base op.
public enum FusedOps {
    public static let domain = "ai.dlkit"

    /// The activations a fused op may carry.
    public static let activations: Set<String> = ["Relu", "LeakyRelu"]

    static var schemas: [OpSchema] {
        [fused("FusedConv", base: "Conv", inputs: 2...3), fused("FusedGemm", base: "Gemm", inputs: 2...3), fusedMatMul,
         fusedAttention,
         FuseConvAdd.schema, FuseConvPool.schema]
    }

    /// `FusedMatMul(A, W, bias)`: `MatMul(A, W) + bias` with W `[K, N]` and bias `[N]`, then the
    /// optional activation; typed as the MatMul.
    static var fusedMatMul: OpSchema {
        OpSchema("FusedMatMul", inputs: 3...3) { ctx throws(GraphError) in
            let act = try ctx.node.string("activation", default: "")
            guard act.isEmpty || activations.contains(act) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "activation", expected: "one of \(activations.sorted())", actual: act)
            }
            let w = try ctx.type(1), bias = try ctx.type(2)
            if let dw = w.dims, let db = bias.dims {
                guard dw.count == 2, db.count == 1, dw[1].value == nil || db[0].value == nil || dw[1] == db[0] else {
                    throw .shapeMismatch(node: ctx.node.displayName, reason: "FusedMatMul needs W [K, N] and bias [N], got \(w) and \(bias)")
                }
            }
            guard let schema = OpSet.schemas["MatMul"] else { return [nil] }
            return try schema.infer(ctx)
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
