import DLGraph
import DLTensor
import DLKernels
import Testing
@testable import DLRuntime

/// The FusedAttention kernel against the ops it replaces, run one node at a time.
@Suite struct FusedAttentionTests {
    func graph(scaleOp: String, maskShape: [Int]?, heads: Int, s: Int, t: Int) -> Graph {
        graph(scaleOp: scaleOp, maskShape: maskShape, batch: [heads], s: s, t: t)
    }

    func graph(scaleOp: String, maskShape: [Int]?, batch: [Int], s: Int, t: Int, nanGuard: Bool = false) -> Graph {
        var nodes = [Node(opType: "MatMul", inputs: ["q", "kt"], outputs: ["sc"])]
        var cur = "sc"
        if !scaleOp.isEmpty {
            nodes.append(Node(opType: scaleOp, inputs: [cur, "c"], outputs: ["ss"]))
            cur = "ss"
        }
        var inits: [(String, Tensor)] = [("c", Tensor(shape: [], scalars: [Float(1.7)]))]
        if let maskShape {
            nodes.append(Node(opType: "Add", inputs: [cur, "mask"], outputs: ["sm"]))
            inits.append(("mask", seededRandom(maskShape, seed: 7)))
            cur = "sm"
        }
        nodes.append(Node(opType: "Softmax", inputs: [cur], outputs: ["p"], attributes: [Attribute(name: "axis", value: .int(-1))]))
        if nanGuard {
            // torch's scaled_dot_product_attention export: a fully masked row's NaNs become zeros.
            nodes.append(Node(opType: "IsNaN", inputs: ["p"], outputs: ["nan"]))
            nodes.append(Node(opType: "Where", inputs: ["nan", "zero", "p"], outputs: ["pg"]))
            inits.append(("zero", Tensor(shape: [], scalars: [Float(0)])))
        }
        nodes.append(Node(opType: "MatMul", inputs: [nanGuard ? "pg" : "p", "v"], outputs: ["y"]))
        let f = { (n: String, s: [Int]) in ValueInfo(name: n, type: TensorType(dtype: .float32, shape: s)) }
        var g = Graph(name: "g", inputs: [f("q", batch + [s, 8]), f("kt", batch + [8, t]), f("v", batch + [t, 5])],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: NamedTensors(inits))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    func stepwise(_ g: Graph, _ feed: [String: Tensor]) throws -> Tensor {
        try #require(try runNodeByNode(g, feed)["y"])
    }

    @Test(arguments: [("Div", [40, 300] as [Int]?), ("Mul", [3, 40, 300]), ("", nil), ("Mul", nil)])
    func fusedEqualsTheOpsItReplaces(_ scaleOp: String, _ mask: [Int]?) throws {
        let heads = 3, s = 40, t = 300  // 300 columns: several row blocks per head
        let g = graph(scaleOp: scaleOp, maskShape: mask, heads: heads, s: s, t: t)
        #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["FusedAttention"])
        let feed = ["q": seededRandom([heads, s, 8], seed: 1), "kt": seededRandom([heads, 8, t], seed: 2), "v": seededRandom([heads, t, 5], seed: 3)]
        for (fused, worst) in try fusedAgainstStepwise(g, feed) {
            #expect(fused.shape == [heads, s, 5])
            #expect(worst < 1e-5, "largest difference \(worst)")
        }
    }

    /// The graph run optimised (FusedAttention) on 1 and 2 threads: its output `y` and the largest
    /// difference from the ops run one by one.
    func fusedAgainstStepwise(_ g: Graph, _ feed: [String: Tensor]) throws -> [(Tensor, Float)] {
        let reference = try stepwise(g, feed).scalars(as: Float.self)
        return try [1, 2].map { threads in
            let saved = ComputeThreads.count
            ComputeThreads.set(threads)
            defer { ComputeThreads.set(saved) }
            let fused = try #require(try Executor(graph: g).run(feed)["y"])
            // A NaN on one side only is the largest difference there is.
            return (fused, zip(fused.scalars(as: Float.self), reference).map { $0.isNaN != $1.isNaN ? .infinity : $0.isNaN ? 0 : abs($0 - $1) }.max() ?? 0)
        }
    }

    /// The attention with `mask` (Div scale) fuses into one node, whose output on 1 and 2 threads
    /// is the ops' run one by one.
    func expectFusedMatchesStepwise(mask: [Int], batch: [Int], s: Int, t: Int) throws {
        let g = graph(scaleOp: "Div", maskShape: mask, batch: batch, s: s, t: t)
        #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["FusedAttention"])
        let feed = ["q": seededRandom(batch + [s, 8], seed: 1), "kt": seededRandom(batch + [8, t], seed: 2),
                    "v": seededRandom(batch + [t, 5], seed: 3)]
        for (fused, worst) in try fusedAgainstStepwise(g, feed) {
            #expect(fused.shape == batch + [s, 5] && worst < 1e-5, "\(mask): largest difference \(worst)")
        }
    }

    /// Masks broadcast to the scores `[2, 3, S, T]` (batch 2, 3 heads) are read where they are by
    /// the fused kernel: BERT's padding mask `[B, 1, 1, T]`, a causal `[1, 1, S, T]`, per batch
    /// entry and row, per head; each as the ops it replaces compute it.
    @Test(arguments: [[2, 1, 1, 300], [1, 1, 40, 300], [2, 1, 40, 300], [3, 1, 300], [300], [2, 3, 1, 300]] as [[Int]])
    func broadcastMasksAreReadInPlace(_ mask: [Int]) throws {
        let batch = [2, 3], s = 40, t = 300
        #expect(AttentionCore.MaskLayout(maskShape: mask, batch: batch, s: s, t: t) != nil)
        try expectFusedMatchesStepwise(mask: mask, batch: batch, s: s, t: t)
    }

    /// Masks broadcast along the score columns (OpenVINO's SDPA adds a one-value zero mask; a
    /// mask per row `[..., S, 1]`) are widened to the columns once, so the fused kernel reads them
    /// as any other mask instead of running the ops it replaced; the numbers are the ops' either way.
    @Test(arguments: [[], [1], [1, 1, 1, 1], [2, 1, 40, 1], [40, 1]] as [[Int]])
    func masksBroadcastAlongTheColumnsAreWidened(_ mask: [Int]) throws {
        let batch = [2, 3], s = 40, t = 300
        let m = seededRandom(mask, seed: 7)
        let wide = try #require(FusedAttentionKernel.widenedAcrossColumns(m, rank: 4, t: t))
        #expect(wide.shape.last == t && wide.elementCount == m.elementCount * t)
        #expect(AttentionCore.MaskLayout(maskShape: wide.shape, batch: batch, s: s, t: t) != nil)
        let values = m.scalars(as: Float.self), widened = wide.scalars(as: Float.self)
        #expect((0..<widened.count).allSatisfy { widened[$0] == values[$0 / t] })
        try expectFusedMatchesStepwise(mask: mask, batch: batch, s: s, t: t)
        // Masks that have their columns, or more dims than the scores, are not widened.
        #expect(FusedAttentionKernel.widenedAcrossColumns(seededRandom([2, 1, 1, 300], seed: 7), rank: 4, t: t) == nil)
        #expect(FusedAttentionKernel.widenedAcrossColumns(seededRandom([1, 1, 1, 1, 1], seed: 7), rank: 4, t: t) == nil)
    }

    /// torch's guard `Where(IsNaN(p), 0, p)` between the Softmax and the MatMul folds in too: a
    /// row masked out entirely is zeros either way, and the other rows are the ops' numbers.
    @Test func torchsNaNGuardFoldsInAndAFullyMaskedRowIsZeros() throws {
        let batch = [2, 3], s = 40, t = 300
        var g = graph(scaleOp: "Div", maskShape: [2, 1, 40, 300], batch: batch, s: s, t: t, nanGuard: true)
        var mask = seededRandom([2, 1, 40, 300], seed: 7).scalars(as: Float.self)
        for j in 0..<t { mask[(1 * 40 + 5) * t + j] = -.infinity }  // batch entry 1, row 5: every column masked
        g.initializers["mask"] = Tensor(shape: [2, 1, 40, 300], scalars: mask)
        #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["FusedAttention"])
        let feed = ["q": seededRandom(batch + [s, 8], seed: 1), "kt": seededRandom(batch + [8, t], seed: 2),
                    "v": seededRandom(batch + [t, 5], seed: 3)]
        for (fused, worst) in try fusedAgainstStepwise(g, feed) {
            #expect(worst < 1e-5, "largest difference \(worst)")
            let y = fused.scalars(as: Float.self)
            // Batch entry 1, head 0, row 5.
            #expect(y[((3 + 0) * s + 5) * 5 ..< ((3 + 0) * s + 6) * 5].allSatisfy { $0 == 0 })
        }
        // A guard that keeps NaNs other than as zeros is not torch's: left as it is.
        g.initializers["zero"] = Tensor(shape: [], scalars: [Float(1)])
        #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType).contains("IsNaN"))
    }

    @Test func maskLayoutsOfBroadcastShapes() {
        typealias L = AttentionCore.MaskLayout
        let batch = [2, 3], s = 4, t = 5
        // Padding mask: one row per batch entry, heads and rows share it.
        #expect(L(maskShape: [2, 1, 1, 5], batch: batch, s: s, t: t) == L(headStride: 5, headDivisor: 3, headModulus: 2, rowStride: 0))
        // Per head only, every row its own.
        #expect(L(maskShape: [3, 4, 5], batch: batch, s: s, t: t) == L(headStride: 20, headDivisor: 1, headModulus: 3, rowStride: 5))
        // One plane for all.
        #expect(L(maskShape: [4, 5], batch: batch, s: s, t: t) == L(headStride: 0, headDivisor: 1, headModulus: 1, rowStride: 5))
        #expect(L(maskShape: [2, 3, 4, 5], batch: batch, s: s, t: t)?.offset(head: 4) == 80)
        #expect(L(maskShape: [2, 1, 1, 5], batch: batch, s: s, t: t)?.offset(head: 4) == 5)
        // Not readable in place: broadcast along the columns, a dim of its own, too many dims.
        #expect(L(maskShape: [2, 1, 4, 1], batch: batch, s: s, t: t) == nil)
        #expect(L(maskShape: [2, 2, 4, 5], batch: batch, s: s, t: t) == nil)
        #expect(L(maskShape: [1, 2, 3, 4, 5], batch: batch, s: s, t: t) == nil)
        #expect(L(maskShape: [2, 1, 4, 5], batch: [2, 3, 7], s: s, t: t) == nil)
    }
}
