import DLTensor

/// Replaces the QDQ form of a quantized convolution (onnxruntime.quantization's QDQ format,
/// TensorRT-style exports),
///
///     y = QuantizeLinear(Conv(DequantizeLinear(xq, sx, zx), DequantizeLinear(wq, sw, zw), DequantizeLinear(bq, sb, 0)?), sy, zy)
///
/// by the ONNX op it stands for, `QLinearConv(xq, sx, zx, wq, sw, zw, sy, zy, bq?)` with the
/// Conv's attributes, which the runtime computes in integers. Only when the scales and zero
/// points are constants (x's and y's one value each, w's one or one per output channel along
/// axis 0), wq is an 8-bit constant of rank 4, the bias (when there is one) an int32 constant
/// whose scale is sx·sw (so its integers add to the sums as they are) with zero point 0, and
/// the Conv's output has no other reader. The DequantizeLinear of x stays while others read it.
package enum FuseQLinearConv: GraphPass {
    public static let name = "fuse-qlinear-conv"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        func constant(_ name: String) -> Tensor? { graph.constantInitializer(name) }
        func bytes(_ t: Tensor) -> Bool { t.dtype == .int8 || t.dtype == .uint8 }
        func floats(_ name: String) -> [Float]? {
            guard let t = constant(name), t.dtype == .float32, t.rank <= 1, t.elementCount >= 1 else { return nil }
            return t.scalars(as: Float.self)
        }
        /// A default-domain DequantizeLinear or QuantizeLinear with three inputs and no attribute
        /// but `axis`: the node's index and its axis.
        func linear(_ v: String, _ op: String) -> (Int, Int)? {
            guard let p = producer[v], OpSet.isDefaultDomain(graph.nodes[p]), graph.nodes[p].opType == op,
                  graph.nodes[p].inputs.count == 3, graph.nodes[p].outputs.count == 1,
                  graph.nodes[p].attributes.allSatisfy({ $0.name == "axis" }),
                  let axis = try? graph.nodes[p].int("axis", default: 1) else { return nil }
            return (p, axis)
        }
        func single(_ v: String) -> Bool { readers[v] == 1 && !outputs.contains(v) }

        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (qi, q) in graph.nodes.enumerated() where OpSet.isDefaultDomain(q) && q.opType == "QuantizeLinear" {
            guard q.inputs.count == 3, q.outputs.count == 1, q.attributes.allSatisfy({ $0.name == "axis" }),
                  floats(q.inputs[1])?.count == 1, let zy = constant(q.inputs[2]), bytes(zy), zy.elementCount == 1,
                  let ci = producer[q.inputs[0]], single(q.inputs[0]) else { continue }
            let conv = graph.nodes[ci]
            guard OpSet.isDefaultDomain(conv), conv.opType == "Conv", (2...3).contains(conv.inputs.count), conv.outputs.count == 1,
                  let (dx, _) = linear(conv.inputs[0], "DequantizeLinear"), let (dw, wAxis) = linear(conv.inputs[1], "DequantizeLinear"),
                  single(conv.inputs[1]) else { continue }
            let x = graph.nodes[dx], w = graph.nodes[dw]
            guard let sx = floats(x.inputs[1]), sx.count == 1, let zx = constant(x.inputs[2]), bytes(zx), zx.elementCount == 1,
                  let wq = constant(w.inputs[0]), bytes(wq), wq.rank == 4, let sw = floats(w.inputs[1]),
                  let zw = constant(w.inputs[2]), zw.dtype == wq.dtype else { continue }
            let m = wq.shape[0]
            guard sw.count == 1 || (sw.count == m && (wAxis == 0 || wAxis == -4)), zw.elementCount == sw.count else { continue }
            var inputs = [x.inputs[0], x.inputs[1], x.inputs[2], w.inputs[0], w.inputs[1], w.inputs[2], q.inputs[1], q.inputs[2]]
            var involved = [ci, qi, dw]
            if conv.inputs.count == 3 {
                // The bias's integers are sums' units when its scale is sx·sw (as float32, to rounding).
                guard let (db, _) = linear(conv.inputs[2], "DequantizeLinear"), single(conv.inputs[2]) else { continue }
                let b = graph.nodes[db]
                guard let bq = constant(b.inputs[0]), bq.dtype == .int32, bq.rank == 1, bq.elementCount == m,
                      let sb = floats(b.inputs[1]), sb.count == 1 || sb.count == m,
                      let zb = constant(b.inputs[2]), zb.doubles().allSatisfy({ $0 == 0 }) else { continue }
                let matches = (0..<m).allSatisfy { c in
                    let want = sx[0] * sw[sw.count == 1 ? 0 : c], got = sb[sb.count == 1 ? 0 : c]
                    return Swift.abs(got - want) <= 1e-6 * Swift.abs(want)
                }
                guard matches else { continue }
                inputs.append(b.inputs[0])
                involved.append(db)
            }
            if single(conv.inputs[0]) { involved.append(dx) }
            guard involved.allSatisfy({ !remove.contains($0) && replaced[$0] == nil }) else { continue }
            replaced[qi] = Node(name: conv.name, opType: "QLinearConv", inputs: inputs, outputs: q.outputs,
                                attributes: conv.attributes, docString: conv.docString)
            remove.formUnion(involved.filter { $0 != qi })
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }
}
