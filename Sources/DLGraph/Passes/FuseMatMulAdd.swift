import DLTensor

/// Folds a bias `Add` into the product that feeds it:
/// - `Add(MatMul(x, W), b)` with a constant 2-D float32 weight `[K, N]` becomes one
///   `ai.dlkit.FusedMatMul(x, W, b)`. The activation may have any rank (a linear layer on
///   `[batch, seq, K]`); the kernel treats its leading dims as rows of one GEMM whose output starts
///   as the bias, so the separate pass over the result for the Add goes away.
/// - `Add(Gemm(A, B), b)` of a Gemm without its C input becomes `Gemm(A, B, b)` (beta 1): OpenVINO
///   IR writes every fully connected layer so, as a MatMul "WithoutBiases" and an Add.
///
/// The bias is a float32 constant of `N` values, `[N]` or with leading ones (`[1, N]`,
/// `[1, 1, N]`: OpenVINO's and paddle2onnx's broadcast form; FusedMatMul broadcasts it as the Add
/// did, a Gemm's C only up to `[1, N]`). Either operand order of the Add.
///
/// Only when the product's output has that one reader and is not a graph output, and neither
/// constant is also a graph input (a fed value would not be constant). `FuseActivation` may then
/// fold a following Relu into the fused node.
package enum FuseMatMulAdd: GraphPass {
    public static let name = "fuse-matmul-add"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let producer = graph.producers()
        func constant(_ name: String) -> Tensor? { graph.constantInitializer(name, dtype: .float32) }
        /// Whether `name` is a bias of `n` values of at most `rank` dims.
        func isBias(_ name: String, n: Int, rank: Int = .max) -> Bool {
            guard let b = constant(name) else { return false }
            return b.elementCount == n && b.shape.last == n && b.rank <= rank
        }
        var remove = Set<Int>()
        var changed = false
        for (i, add) in graph.nodes.enumerated() where OpSet.isDefaultDomain(add) {
            guard add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1, !remove.contains(i) else { continue }
            for side in 0..<2 {
                let x = add.inputs[side], biasName = add.inputs[1 - side]
                guard !x.isEmpty, readers[x] == 1, let p = producer[x], !remove.contains(p) else { continue }
                let mm = graph.nodes[p]
                guard OpSet.isDefaultDomain(mm), mm.outputs.count == 1, let w = constant(mm.inputs.count > 1 ? mm.inputs[1] : ""),
                      w.rank == 2 else { continue }
                if mm.opType == "MatMul", mm.inputs.count == 2, isBias(biasName, n: w.shape[1]) {
                    graph.nodes[p] = Node(name: mm.name, opType: "FusedMatMul", domain: FusedOps.domain,
                                          inputs: [mm.inputs[0], mm.inputs[1], biasName], outputs: add.outputs,
                                          attributes: [], docString: mm.docString)
                } else if mm.opType == "Gemm", mm.inputs.count == 2 || (mm.inputs.count == 3 && mm.inputs[2].isEmpty),
                          let transB = try? mm.int("transB", default: 0),
                          isBias(biasName, n: transB != 0 ? w.shape[0] : w.shape[1], rank: 2) {
                    let attributes = mm.attributes.filter { $0.name != "beta" } + [Attribute(name: "beta", value: .float(1))]
                    graph.nodes[p] = Node(name: mm.name, opType: "Gemm", inputs: [mm.inputs[0], mm.inputs[1], biasName],
                                          outputs: add.outputs, attributes: attributes, docString: mm.docString)
                } else {
                    continue
                }
                remove.insert(i)
                changed = true
                break
            }
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }
}
