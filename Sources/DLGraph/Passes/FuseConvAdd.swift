import DLTensor

/// Folds a residual `Add` (and the `Relu` after it) into the `Conv` that feeds it:
/// `Relu(Add(Conv(x, W, B), skip))` becomes one `ai.dlkit.FusedConvAdd(x, W, B, skip)` with
/// `activation = "Relu"`, so the kernel adds the skip connection and applies the activation while
/// each band of the convolution's output is still in cache, and no intermediate tensor is made.
/// Without the Relu (or with another activation `FuseActivation` fuses) the same holds with no
/// (or that) activation.
///
/// Only when the Conv's output has that one reader (the Add) and is not a graph output; likewise
/// the Add's output for the activation. Either Add operand may be the Conv (addition is
/// commutative, bit for bit); when both are, the first is fused and the second becomes the skip.
/// The skip may broadcast: the kernel then falls back to Conv, Add and the activation in turn.
package enum FuseConvAdd: GraphPass {
    public static let name = "fuse-conv-add"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (i, add) in graph.nodes.enumerated() where OpSet.isDefaultDomain(add) && add.opType == "Add" {
            guard add.inputs.count == 2, add.outputs.count == 1, !remove.contains(i), replaced[i] == nil else { continue }
            // The Conv operand: a plain default-domain Conv whose only reader is this Add.
            var pick: (conv: Int, skip: String)?
            for side in 0..<2 {
                let v = add.inputs[side]
                guard !v.isEmpty, readers[v] == 1, !outputs.contains(v), let p = producer[v],
                      !remove.contains(p), replaced[p] == nil else { continue }
                let c = graph.nodes[p]
                guard OpSet.isDefaultDomain(c), c.opType == "Conv", c.outputs.count == 1,
                      (2...3).contains(c.inputs.count), !add.inputs[1 - side].isEmpty else { continue }
                pick = (p, add.inputs[1 - side])
                break
            }
            guard let (p, skip) = pick else { continue }
            let conv = graph.nodes[p]
            var attrs = conv.attributes
            var out = add.outputs[0]
            // The activation after the Add, when the Add's result has no other reader.
            if readers[out] == 1, !outputs.contains(out),
               let a = graph.nodes.indices.first(where: { graph.nodes[$0].inputs.contains(out) }),
               !remove.contains(a), replaced[a] == nil {
                if let a2 = FusedOps.activationAttributes(of: graph.nodes[a], in: graph, channels: FusedOps.convChannels(conv, in: graph)),
                   graph.nodes[a].input(0) == out {
                    attrs += a2
                    out = graph.nodes[a].outputs[0]
                    remove.insert(a)
                }
            }
            let inputs = [conv.inputs[0], conv.inputs[1], conv.inputs.count > 2 ? conv.inputs[2] : "", skip]
            replaced[p] = Node(name: conv.name, opType: "FusedConvAdd", domain: FusedOps.domain, inputs: inputs,
                               outputs: [out], attributes: attrs, docString: conv.docString)
            remove.insert(i)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// `FusedConvAdd(X, W, B, R)`: `Conv(X, W, B) + R` (numpy broadcasting), then the optional
    /// activation; B may be left out (empty name). Typed as the Add of the Conv's result and R.
    static var schema: OpSchema {
        OpSchema("FusedConvAdd", inputs: 4...4) { ctx throws(GraphError) in
            let act = try ctx.node.string("activation", default: "")
            guard act.isEmpty || FusedOps.activations.contains(act) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "activation",
                                     expected: "one of \(FusedOps.activations.sorted())", actual: act)
            }
            guard let conv = OpSet.schemas["Conv"] else { return [nil] }
            let base = InferenceContext(node: ctx.node, inputTypes: Array(ctx.inputTypes.prefix(3)),
                                        inputValues: Array(ctx.inputValues.prefix(3)))
            guard let y = try conv.infer(base).first ?? nil else { return [nil] }
            let r = try ctx.type(3)
            guard r.dtype == y.dtype else {
                throw .typeMismatch(node: ctx.node.displayName, reason: "the residual is \(r.dtype), the Conv gives \(y.dtype)")
            }
            guard let dy = y.dims, let dr = r.dims else { return [TensorType(dtype: y.dtype, dims: nil)] }
            let out: [Dim]
            do throws(Broadcast.Mismatch) { out = try Broadcast.dims(dy, dr) } catch {
                throw .shapeMismatch(node: ctx.node.displayName, reason: "the residual \(r) against the Conv's \(y): \(error)")
            }
            return [TensorType(dtype: y.dtype, dims: out)]
        }
    }
}
