import DLTensor

/// Folds an inference-mode `BatchNormalization` into the `Conv` or `Gemm` that feeds it, when the
/// weights and the four BatchNorm parameters are initializers:
///
///     f[c]  = scale[c] / sqrt(var[c] + epsilon)
///     W'[c] = W[c] * f[c]                      (output channel c of the Conv; column c of Gemm's op(B))
///     B'[c] = (B[c] - mean[c]) * f[c] + bias[c]
///
/// so `BN(Conv(x, W, B)) = Conv(x, W', B')` up to float rounding, and the BatchNorm's pass over
/// the activations disappears (graphs from Keras and from exporters that do not fold BN in eval
/// mode keep it). The folded weights are new initializers; the originals are removed when nothing
/// else reads them.
///
/// Only when the Conv/Gemm output has that one reader and is not a graph output, the BatchNorm
/// has no training outputs or `training_mode`, and every tensor involved is float32 of the right
/// size. A Gemm is folded only with `transA = 0`, a 2-D `B`, and `C` absent or of `N` values; its
/// `beta` is folded into the new `C`.
package enum FoldBatchNorm: GraphPass {
    public static let name = "fold-batchnorm"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let graphInputs = Set(graph.inputs.map(\.name))
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        /// An initializer that no run can override (not also a graph input), as float32 values.
        func constant(_ name: String) -> (Tensor, [Float])? {
            guard !name.isEmpty, !graphInputs.contains(name), let t = graph.initializers[name], t.dtype == .float32 else { return nil }
            return (t, t.scalars(as: Float.self))
        }
        func freshName(_ base: String) -> String {
            var name = base + "_bnfold"
            var k = 1
            while graph.initializers.contains(name) || producer[name] != nil || graphInputs.contains(name) {
                name = base + "_bnfold\(k)"
                k += 1
            }
            return name
        }

        var remove = Set<Int>()
        var changed = false
        var dropped: [String] = []
        for (i, bn) in graph.nodes.enumerated() where OpSet.isDefaultDomain(bn) && bn.opType == "BatchNormalization" {
            guard bn.inputs.count == 5, let y = bn.outputs.first, !y.isEmpty,
                  bn.outputs.dropFirst().allSatisfy(\.isEmpty),
                  (try? bn.int("training_mode", default: 0)) == 0,
                  let eps = try? bn.float("epsilon", default: 1e-5),
                  let x = bn.input(0), readers[x] == 1, !outputs.contains(x), let p = producer[x], !remove.contains(p) else { continue }
            let base = graph.nodes[p]
            guard OpSet.isDefaultDomain(base), base.outputs.count == 1,
                  base.opType == "Conv" || base.opType == "Gemm",
                  let (_, scale) = constant(bn.inputs[1]), let (_, shift) = constant(bn.inputs[2]),
                  let (_, mean) = constant(bn.inputs[3]), let (_, variance) = constant(bn.inputs[4]),
                  let wName = base.input(1), let (w, wv) = constant(wName) else { continue }
            let channels = scale.count
            guard channels > 0, shift.count == channels, mean.count == channels, variance.count == channels else { continue }
            var factor = [Float](repeating: 0, count: channels)
            for c in 0..<channels { factor[c] = scale[c] / (variance[c] + eps).squareRoot() }

            var attrs = base.attributes
            var oldBias: [Float]? = nil
            var newW = wv
            if base.opType == "Conv" {
                guard w.rank >= 3, w.shape[0] == channels else { continue }
                let per = w.elementCount / channels
                for c in 0..<channels {
                    for j in 0..<per { newW[c * per + j] *= factor[c] }
                }
                if let b = base.input(2) {
                    guard let (_, bv) = constant(b), bv.count == channels else { continue }
                    oldBias = bv
                }
            } else {
                guard (try? base.int("transA", default: 0)) == 0, w.rank == 2,
                      let transB = try? base.int("transB", default: 0),
                      let beta = try? base.float("beta", default: 1) else { continue }
                let n = transB != 0 ? w.shape[0] : w.shape[1]
                guard n == channels else { continue }
                let k = transB != 0 ? w.shape[1] : w.shape[0]
                for c in 0..<channels {
                    for j in 0..<k {
                        // op(B)[j, c] is B[c, j] (transB) or B[j, c].
                        let at = transB != 0 ? c * k + j : j * channels + c
                        newW[at] *= factor[c]
                    }
                }
                if let cName = base.input(2) {
                    guard let (ct, cv) = constant(cName), cv.count == channels,
                          ct.shape == [channels] || ct.shape == [1, channels] else { continue }
                    oldBias = cv.map { $0 * beta }
                }
                attrs.removeAll { $0.name == "beta" }
            }
            var newB = [Float](repeating: 0, count: channels)
            for c in 0..<channels { newB[c] = ((oldBias?[c] ?? 0) - mean[c]) * factor[c] + shift[c] }

            let wNew = freshName(wName)
            graph.initializers[wNew] = Tensor(shape: w.shape, scalars: newW)
            let bNew = freshName(base.input(2) ?? (wName + "_bias"))
            graph.initializers[bNew] = Tensor(shape: [channels], scalars: newB)
            graph.nodes[p] = Node(name: base.name, opType: base.opType, domain: base.domain,
                                  inputs: [base.inputs[0], wNew, bNew], outputs: [y],
                                  attributes: attrs, docString: base.docString)
            remove.insert(i)
            dropped.append(contentsOf: [wName] + bn.inputs.dropFirst())
            if let b = base.input(2) { dropped.append(b) }
            changed = true
        }
        guard changed else { return false }
        graph.rewrite(removing: remove)
        // Initializers the folded nodes read and nothing reads any more.
        let left = graph.readerCounts()
        for name in Set(dropped) where left[name] == nil && !graphInputs.contains(name) {
            graph.initializers[name] = nil
        }
        return true
    }
}
