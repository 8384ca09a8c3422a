import DLTensor

/// Folds a zero `Pad` of the spatial axes into the convolution that reads it, directly or
/// through one `Transpose`: Keras' `ZeroPadding2D` before a VALID (strided or depthwise)
/// convolution, which TensorFlow converters write as PAD then CONV_2D and tf2onnx as Pad then
/// Conv. A TFLite file imports it channels last, `Pad` then the `Transpose` to channels first,
/// so the pad's axes are read through the permutation. The padded copy goes (and with it the
/// transpose's larger input); the convolution pads as it reads.
///
/// Only a constant-mode Pad of constant, non-negative pads that leave batch and channels alone,
/// with a zero (or absent) fill and no `axes`, whose result (and the transpose's) has that one
/// reader and is not a graph output; a convolution with explicit pads or VALID (SAME leaves its
/// padding to the input size, which the fold changes).
package enum FoldPadIntoConv: GraphPass {
    public static let name = "fold-pad-into-conv"

    static func isConvolution(_ n: Node) -> Bool {
        (OpSet.isDefaultDomain(n) && n.opType == "Conv")
            || (n.domain == FusedOps.domain && ["FusedConv", "FusedConvAdd"].contains(n.opType))
    }

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        /// `name`'s producer when `name` is read once and is no graph output.
        func soleProducer(_ name: String) -> Int? {
            guard !name.isEmpty, readers[name] == 1, !outputs.contains(name) else { return nil }
            return producer[name]
        }
        var replaced: [Int: Node] = [:]
        var remove = Set<Int>()
        for (i, conv) in graph.nodes.enumerated() where isConvolution(conv) {
            guard let x = conv.inputs.first, var p = soleProducer(x) else { continue }
            // Through one Transpose: conv axis a reads the pad's axis perm[a].
            var transpose: Int?
            var perm: [Int]?
            let t = graph.nodes[p]
            if OpSet.isDefaultDomain(t), t.opType == "Transpose", t.inputs.count == 1, let q = (try? t.ints("perm")) ?? nil,
               Set(q) == Set(0..<q.count), let source = soleProducer(t.inputs[0]) {
                transpose = p
                perm = q
                p = source
            }
            let pad = graph.nodes[p]
            guard OpSet.isDefaultDomain(pad), pad.outputs.count == 1, (try? pad.string("mode", default: "constant")) == "constant",
                  replaced[p] == nil, !remove.contains(p), transpose.map({ replaced[$0] == nil }) ?? true,
                  let pads = graph.constantPads(of: pad), pads.allSatisfy({ $0 >= 0 }) else { continue }
            if pad.inputs.count > 2, !pad.inputs[2].isEmpty {
                guard let fill = graph.constantInitializer(pad.inputs[2]), fill.elementCount == 1, fill.doubles().first == 0 else { continue }
            }
            let r = pads.count / 2, spatial = r - 2
            guard spatial >= 1, perm.map({ $0.count == r }) ?? true else { continue }
            let axis = { (a: Int) in perm?[a] ?? a }
            guard (0..<2).allSatisfy({ pads[axis($0)] == 0 && pads[r + axis($0)] == 0 }) else { continue }
            guard var window = try? WindowAttributes(node: conv), window.autoPad == .notSet || window.autoPad == .valid else { continue }
            let own = window.autoPad == .valid ? [Int](repeating: 0, count: 2 * spatial) : window.pads ?? [Int](repeating: 0, count: 2 * spatial)
            guard own.count == 2 * spatial else { continue }
            window.autoPad = .notSet
            window.pads = (0..<spatial).map { own[$0] + pads[axis(2 + $0)] } + (0..<spatial).map { own[spatial + $0] + pads[r + axis(2 + $0)] }
            var folded = conv
            folded.attributes = conv.attributes.filter { !WindowAttributes.names.contains($0.name) } + window.attributes
            if let transpose {
                var tr = graph.nodes[transpose]
                tr.inputs = [pad.inputs[0]]
                replaced[transpose] = tr
            } else {
                folded.inputs[0] = pad.inputs[0]
            }
            replaced[i] = folded
            remove.insert(p)
        }
        guard !replaced.isEmpty else { return false }
        graph.rewrite(replacing: replaced, removing: remove)
        return true
    }
}
