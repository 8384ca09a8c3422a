import DLTensor

/// Folds a 2×2 stride-2 `MaxPool` into the `ai.dlkit.FusedConv` that feeds it (a CNN's
/// Conv → Relu → MaxPool, after `FuseActivation`): one `ai.dlkit.FusedConvPool` with the
/// Conv's inputs and attributes, so the kernel pools each pair of output rows while it is in
/// cache and the full-resolution activation is never stored.
///
/// Only a plain pool: kernel 2×2, strides 2, no padding (or `auto_pad` VALID), no dilation,
/// `ceil_mode` 0, no Indices output; and only when the FusedConv's output has that one reader
/// and is not a graph output. Max pooling after the activation is exact, so the result is the
/// same bit for bit.
public enum FuseConvPool: GraphPass {
    public static let name = "fuse-conv-pool"

    /// True when `pool` is the plain 2×2 stride-2 MaxPool the fused op computes.
    static func isPlain2x2(_ pool: Node) -> Bool {
        guard OpSet.isDefaultDomain(pool), pool.opType == "MaxPool", pool.inputs.count == 1,
              pool.outputs.count == 1 || (pool.outputs.count == 2 && pool.outputs[1].isEmpty) else { return false }
        guard let w = try? WindowAttributes(node: pool) else { return false }
        return w.kernelShape == [2, 2] && w.strides == [2, 2] && !w.ceilMode
            && (w.pads ?? []).allSatisfy { $0 == 0 } && (w.dilations ?? []).allSatisfy { $0 == 1 }
            && (w.autoPad == .notSet || w.autoPad == .valid)
    }

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (i, pool) in graph.nodes.enumerated() where isPlain2x2(pool) {
            guard let x = pool.input(0), readers[x] == 1, !outputs.contains(x), let p = producer[x],
                  replaced[p] == nil, !remove.contains(p) else { continue }
            let conv = graph.nodes[p]
            guard conv.domain == FusedOps.domain, conv.opType == "FusedConv", conv.outputs.count == 1 else { continue }
            replaced[p] = Node(name: conv.name, opType: "FusedConvPool", domain: FusedOps.domain, inputs: conv.inputs,
                               outputs: [pool.outputs[0]], attributes: conv.attributes, docString: conv.docString)
            remove.insert(i)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// `FusedConvPool(X, W, B)`: `MaxPool(act(Conv(X, W, B)))` with a 2×2 window and stride 2
    /// (floor); typed as the Conv with both spatial sizes halved (rounded down).
    static var schema: OpSchema {
        OpSchema("FusedConvPool", inputs: 2...3) { ctx throws(GraphError) in
            let act = try ctx.node.string("activation", default: "")
            guard FusedOps.activations.contains(act) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "activation",
                                     expected: "one of \(FusedOps.activations.sorted())", actual: act)
            }
            guard let conv = OpSet.schemas["Conv"], let y = try conv.infer(ctx).first ?? nil else { return [nil] }
            guard let dims = y.dims else { return [y] }
            guard dims.count == 4 else {
                throw .shapeMismatch(node: ctx.node.displayName, reason: "FusedConvPool needs a 2-D convolution, got \(y)")
            }
            let half = dims.enumerated().map { i, d -> Dim in
                i < 2 ? d : d.value.map { .fixed($0 / 2) } ?? .unknown
            }
            return [TensorType(dtype: y.dtype, dims: half)]
        }
    }
}
