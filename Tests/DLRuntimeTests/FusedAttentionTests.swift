import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// The FusedAttention kernel against the ops it replaces, run one node at a time.
@Suite struct FusedAttentionTests {
    func graph(scaleOp: String, maskShape: [Int]?, heads: Int, s: Int, t: Int) -> Graph {
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
        nodes.append(Node(opType: "MatMul", inputs: ["p", "v"], outputs: ["y"]))
        let f = { (n: String, s: [Int]) in ValueInfo(name: n, type: TensorType(dtype: .float32, shape: s)) }
        var g = Graph(name: "g", inputs: [f("q", [heads, s, 8]), f("kt", [heads, 8, t]), f("v", [heads, t, 5])],
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
        for threads in [1, 2] {
            let saved = ComputeThreads.count
            ComputeThreads.set(threads)
            defer { ComputeThreads.set(saved) }
            let fused = try #require(try Executor(graph: g).run(feed)["y"])
            let reference = try stepwise(g, feed)
            #expect(fused.shape == [heads, s, 5])
            let a = fused.scalars(as: Float.self), b = reference.scalars(as: Float.self)
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "largest difference \(worst)")
        }
    }
}
