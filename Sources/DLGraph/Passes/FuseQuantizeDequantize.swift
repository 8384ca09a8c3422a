import DLTensor

/// Replaces a `QuantizeLinear` whose only reader is a `DequantizeLinear` with the same scale and
/// zero point by one `ai.dlkit.QuantizeDequantize(x, scale, zero_point)`: the round trip through
/// the integer type (round half to even, saturate, back to float) without the integer tensor in
/// between. QDQ models (onnxruntime.quantization, TensorRT-style exports) put such a pair on
/// every activation; fused, it is one pass over the data instead of two plus an int8 tensor.
///
/// Only when both nodes' scale and zero point are the same initializers (or equal ones, no run
/// can override), one value each, the zero point is int8 or uint8, no `axis`/`block_size`/
/// `output_dtype`/`saturate` attribute asks for something else, and the quantised value is no
/// graph output.
package enum FuseQuantizeDequantize: GraphPass {
    public static let name = "fuse-quantize-dequantize"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        var readerOf: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for v in n.inputs where !v.isEmpty { readerOf[v] = i }
        }
        func constant(_ name: String) -> Tensor? { graph.constantInitializer(name).flatMap { $0.elementCount == 1 ? $0 : nil } }
        func plain(_ n: Node) -> Bool {
            n.attributes.allSatisfy { a in a.name == "axis" } && n.inputs.count == 3 && n.outputs.count == 1
        }
        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (i, q) in graph.nodes.enumerated() where OpSet.isDefaultDomain(q) && q.opType == "QuantizeLinear" {
            guard plain(q), let qv = q.outputs.first, readers[qv] == 1, !outputs.contains(qv), let d = readerOf[qv],
                  replaced[d] == nil, !remove.contains(d) else { continue }
            let dq = graph.nodes[d]
            guard OpSet.isDefaultDomain(dq), dq.opType == "DequantizeLinear", plain(dq), dq.inputs[0] == qv,
                  let s1 = constant(q.inputs[1]), let s2 = constant(dq.inputs[1]), s1.dtype == .float32, s1 == s2,
                  let z1 = constant(q.inputs[2]), let z2 = constant(dq.inputs[2]), z1 == z2,
                  z1.dtype == .int8 || z1.dtype == .uint8 else { continue }
            replaced[i] = Node(name: q.name, opType: "QuantizeDequantize", domain: FusedOps.domain, inputs: q.inputs,
                               outputs: dq.outputs, docString: q.docString)
            remove.insert(d)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }

    /// `QuantizeDequantize(x, scale, zero_point)`: typed as x.
    static var schema: OpSchema {
        OpSchema("QuantizeDequantize", inputs: 3...3) { ctx throws(GraphError) in [try ctx.type(0)] }
    }
}
