import DLTensor

/// Replaces a ConvInteger between transposes from and back to channels-last, as channels-last
/// importers write it (DLTFLite's integer CONV_2D and DEPTHWISE_CONV_2D),
///
///     y = Transpose(ConvInteger(Transpose(x, [0, 3, 1, 2]), w, x_zero_point?, w_zero_point?), [0, 2, 3, 1])
///     y = Add(y, bias)                 (optional: an int32 vector constant, one value per output channel)
///
/// by one `ai.dlkit.ConvIntegerNHWC(x, w, x_zero_point, w_zero_point, bias)` with ConvInteger's
/// attributes: x NHWC, w as ConvInteger's [M, C/group, KH, KW], y NHWC int32 (the sums, plus the
/// bias when it has one). The kernel reads and writes channels last, so neither full-size
/// transpose is made, and the bias goes on with the sums. Only when the inner values have no
/// other reader and are no graph outputs (the first transpose stays while others read it).
///
/// An `ai.dlkit.Requantize` (see `FuseRequantize`) that is the sums' only reader joins the node:
/// `ConvIntegerNHWC(x, w, x_zero_point, w_zero_point, bias, left, multiplier, right, real_scale,
/// y_scale, y_zero_point)` with Requantize's activation attributes, y the quantized bytes, so the
/// kernel requantizes each band of sums while it is in cache.
package enum FuseConvIntegerNHWC: GraphPass {
    public static let name = "fuse-conv-integer-nhwc"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        var readerOf: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for v in n.inputs where !v.isEmpty { readerOf[v] = i }
        }
        func transpose(_ n: Node, _ perm: [Int]) -> Bool {
            OpSet.isDefaultDomain(n) && n.opType == "Transpose" && n.inputs.count == 1 && n.outputs.count == 1
                && ((try? n.ints("perm")) ?? nil) == perm
        }
        func single(_ v: String) -> Bool { readers[v] == 1 && !outputs.contains(v) }
        /// The only reader of `v` when it has one and is no graph output.
        func soleReader(_ v: String) -> Int? { single(v) ? readerOf[v] : nil }
        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (ci, conv) in graph.nodes.enumerated() where OpSet.isDefaultDomain(conv) && conv.opType == "ConvInteger" {
            guard (2...4).contains(conv.inputs.count), conv.outputs.count == 1, let ti = producer[conv.inputs[0]],
                  transpose(graph.nodes[ti], [0, 3, 1, 2]), let back = soleReader(conv.outputs[0]),
                  transpose(graph.nodes[back], [0, 2, 3, 1]) else { continue }
            var last = back, output = graph.nodes[back].outputs[0], bias = ""
            if let add = soleReader(output), OpSet.isDefaultDomain(graph.nodes[add]), graph.nodes[add].opType == "Add",
               graph.nodes[add].inputs.count == 2, graph.nodes[add].outputs.count == 1 {
                let a = graph.nodes[add]
                let other = a.inputs[0] == output ? a.inputs[1] : a.inputs[0]
                // One value per output channel (the weights may not be folded yet: the kernel checks the count).
                if let b = graph.constantInitializer(other, dtype: .int32), b.rank == 1 {
                    (last, output, bias) = (add, a.outputs[0], other)
                }
            }
            let involved = [ci, back, last]
            guard involved.allSatisfy({ !remove.contains($0) && replaced[$0] == nil }) else { continue }
            let inputs = [graph.nodes[ti].inputs[0], conv.inputs[1], conv.input(2) ?? "", conv.input(3) ?? "", bias]
            replaced[last] = Node(name: conv.name, opType: "ConvIntegerNHWC", domain: FusedOps.domain, inputs: inputs,
                                  outputs: [output], attributes: conv.attributes, docString: conv.docString)
            remove.formUnion([ci, back, last].filter { $0 != last })
            if readers[conv.inputs[0]] == 1, !outputs.contains(conv.inputs[0]), !remove.contains(ti), replaced[ti] == nil {
                remove.insert(ti)
            }
        }
        for (ri, r) in graph.nodes.enumerated() where r.domain == FusedOps.domain && r.opType == "Requantize" {
            guard r.inputs.count == 7, let ci = producer[r.inputs[0]], single(r.inputs[0]) else { continue }
            let conv = graph.nodes[ci]
            guard conv.domain == FusedOps.domain, conv.opType == "ConvIntegerNHWC", conv.inputs.count <= 5,
                  [ci, ri].allSatisfy({ !remove.contains($0) && replaced[$0] == nil }) else { continue }
            let padded = conv.inputs + Array(repeating: "", count: 5 - conv.inputs.count)
            replaced[ri] = Node(name: conv.name, opType: "ConvIntegerNHWC", domain: FusedOps.domain,
                                inputs: padded + r.inputs.dropFirst(), outputs: r.outputs,
                                attributes: conv.attributes + r.attributes, docString: conv.docString)
            remove.insert(ci)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// `ConvIntegerNHWC(x, w, x_zero_point, w_zero_point, bias[, Requantize's six])`: int32
    /// [N, OH, OW, M] from x [N, H, W, C] and w [M, C/group, KH, KW] with ConvInteger's window
    /// attributes, or the requantized bytes (y_zero_point's type). Sized as ConvInteger's output
    /// with the channels moved last, so the steps after it keep their types in a plan.
    static var schema: OpSchema {
        OpSchema("ConvIntegerNHWC", inputs: 2...11) { ctx throws(GraphError) in
            let attributes = ctx.node.attributes.filter { !["activation", "activation_alpha", "activation_beta"].contains($0.name) }
            let window = try WindowAttributes(node: Node(opType: "ConvInteger", inputs: ctx.node.inputs, outputs: ctx.node.outputs,
                                                         attributes: attributes))
            let dtype = ctx.node.inputs.count > 5 ? try ctx.type(10).dtype : .int32
            // x [N, H, W, C] seen as [N, C, H, W]; the sums [N, M, OH, OW] as [N, OH, OW, M].
            var dims: [Dim]? = nil
            if let dx = ctx.inputTypes.first??.dims, dx.count == 4,
               let nchw = try ConvolutionOps.integerConvDims(window, x: [dx[0], dx[3], dx[1], dx[2]],
                                                             w: ctx.inputTypes.count > 1 ? ctx.inputTypes[1]?.dims : nil) {
                dims = [nchw[0], nchw[2], nchw[3], nchw[1]]
            }
            return [TensorType(dtype: dtype, dims: dims)]
        }
    }
}
