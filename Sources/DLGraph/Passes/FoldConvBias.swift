import DLTensor

/// Folds a per-channel constant `Add` after a `Conv` into the Conv's bias: paddle2onnx and
/// OpenVINO-style graphs write `Add(Conv(x, W), b)` with `b` of shape `[1, C, 1, 1]` (or
/// `[C, 1, 1]`) instead of giving the Conv its bias, which costs a pass over the activations and
/// keeps the activation after it from fusing into the convolution.
///
/// Only when the Conv's output has that one reader and is not a graph output, `b` is a float32
/// initializer no run can override with one value per output channel, and the Conv's own bias
/// (if any) is such an initializer too; the sum becomes a new initializer.
package enum FoldConvBias: GraphPass {
    public static let name = "fold-conv-bias"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        func constant(_ name: String) -> Tensor? { graph.constantInitializer(name, dtype: .float32) }
        var remove = Set<Int>()
        var changed = false
        for (i, add) in graph.nodes.enumerated() where OpSet.isDefaultDomain(add) && add.opType == "Add" {
            guard add.inputs.count == 2, add.outputs.count == 1 else { continue }
            for side in 0..<2 {
                let x = add.inputs[side], bName = add.inputs[1 - side]
                guard !x.isEmpty, readers[x] == 1, !outputs.contains(x), let p = producer[x], !remove.contains(p),
                      let b = constant(bName) else { continue }
                let conv = graph.nodes[p]
                guard OpSet.isDefaultDomain(conv), conv.opType == "Conv", conv.outputs.count == 1,
                      (2...3).contains(conv.inputs.count), let w = constant(conv.inputs[1]), w.rank >= 3 else { continue }
                let channels = w.shape[0]
                // [C, 1, ..., 1] or [1, C, 1, ..., 1] against an output [N, C, spatial...].
                let dims = b.shape.drop { $0 == 1 && b.shape.count > w.rank - 1 }
                guard b.elementCount == channels, b.rank <= w.rank, dims.first == channels,
                      dims.dropFirst().allSatisfy({ $0 == 1 }), dims.count == w.rank - 1 else { continue }
                var sum = b.scalars(as: Float.self)
                if conv.inputs.count == 3, !conv.inputs[2].isEmpty {
                    guard let own = constant(conv.inputs[2]), own.elementCount == channels else { continue }
                    for (k, v) in own.scalars(as: Float.self).enumerated() { sum[k] += v }
                }
                let name = graph.unusedName(conv.outputs[0] + "_bias")
                graph.initializers[name] = Tensor(shape: [channels], scalars: sum)
                graph.nodes[p] = Node(name: conv.name, opType: "Conv", inputs: [conv.inputs[0], conv.inputs[1], name],
                                      outputs: add.outputs, attributes: conv.attributes, docString: conv.docString)
                remove.insert(i)
                changed = true
                break
            }
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }
}

/// Recognises HardSwish written out as `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (paddle2onnx's
/// export of `hardswish`; `Mul` by 1/6 in place of the `Div` too) and replaces the four nodes by
/// one `HardSwish(x)`, which `FuseActivation` can then fold into the producing convolution.
///
/// Only when the constants are float32 initializers of one value with exactly those values, and
/// the intermediate results have no other reader and are not graph outputs.
package enum FuseHardSwish: GraphPass {
    public static let name = "fuse-hardswish"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        func scalar(_ name: String) -> Float? {
            guard let t = graph.constantInitializer(name, dtype: .float32), t.elementCount == 1 else { return nil }
            return t.scalars(as: Float.self).first
        }
        /// The node producing `v`, when it is a default-domain `op` whose output only one node reads.
        func single(_ v: String, _ op: String) -> Int? {
            guard readers[v] == 1, !outputs.contains(v), let p = producer[v], OpSet.isDefaultDomain(graph.nodes[p]),
                  graph.nodes[p].opType == op, graph.nodes[p].outputs.count == 1 else { return nil }
            return p
        }
        /// The operand of a two-input node other than the constant `value`, or nil.
        func other(_ n: Node, constant value: Float) -> String? {
            guard n.inputs.count == 2 else { return nil }
            if scalar(n.inputs[1]) == value { return n.inputs[0] }
            if scalar(n.inputs[0]) == value { return n.inputs[1] }
            return nil
        }
        var remove = Set<Int>()
        var replaced: [Int: Node] = [:]
        for (i, last) in graph.nodes.enumerated() where OpSet.isDefaultDomain(last) && last.outputs.count == 1 {
            let product: String?
            switch last.opType {
            case "Div": product = last.inputs.count == 2 && scalar(last.inputs[1]) == 6 ? last.inputs[0] : nil
            case "Mul": product = other(last, constant: Float(1) / 6)
            default: product = nil
            }
            guard let product, let m = single(product, "Mul"), !remove.contains(m) else { continue }
            let mul = graph.nodes[m]
            guard mul.inputs.count == 2 else { continue }
            // One operand is x, the other Clip(Add(x, 3), 0, 6).
            var found: (x: String, clip: Int, add: Int)?
            for side in 0..<2 {
                let x = mul.inputs[side]
                guard let c = single(mul.inputs[1 - side], "Clip"), !remove.contains(c) else { continue }
                let clip = graph.nodes[c]
                guard clip.inputs.count == 3, scalar(clip.inputs[1]) == 0, scalar(clip.inputs[2]) == 6,
                      let a = single(clip.inputs[0], "Add"), !remove.contains(a),
                      other(graph.nodes[a], constant: 3) == x else { continue }
                found = (x, c, a)
                break
            }
            guard let (x, c, a) = found else { continue }
            replaced[i] = Node(name: last.name, opType: "HardSwish", inputs: [x], outputs: last.outputs,
                               docString: last.docString)
            remove.formUnion([m, c, a])
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }
}
