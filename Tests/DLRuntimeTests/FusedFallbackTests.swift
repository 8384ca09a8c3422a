import DLGraph
import DLRuntime
import DLTensor
import Testing

/// The fused kernels' general fallbacks (`KernelContext.runOp` + `applyingFusedActivation`): a
/// FusedConvAdd whose skip input broadcasts cannot add it in the conv epilogue, so it runs Conv,
/// Add and the activation (here LeakyRelu with its alpha) through their own kernels.
extension GraphPassNumericsTests {
    @Test func fusedConvAddWithABroadcastSkipFallsBackToTheSameNumbers() throws {
        let nodes = [
            Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                 attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
            Node(opType: "Add", inputs: ["c", "skip"], outputs: ["s"]),
            Node(opType: "LeakyRelu", inputs: ["s"], outputs: ["y"], attributes: [Attribute(name: "alpha", value: .float(0.2))]),
        ]
        var g = Graph(name: "g",
                      inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.fixed(2), .fixed(3), .fixed(5), .fixed(5)])),
                               ValueInfo(name: "skip", type: TensorType(dtype: .float32, dims: [.fixed(1), .fixed(4), .fixed(1), .fixed(1)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("w", seededRandom([4, 3, 3, 3], seed: 21)), ("b", seededRandom([4], seed: 22))]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, applied) = try GraphOptimizer.optimizeStrict(g)
        #expect(applied.contains("fuse-conv-add"))
        #expect(opt.nodes.count == 1)
        let feed = ["x": seededRandom([2, 3, 5, 5], seed: 23), "skip": seededRandom([1, 4, 1, 1], seed: 24)]
        let want = try stepwise(g, feed)["y"]
        expectClose(try Executor(graph: g).run(feed)["y"], want)
        // Some outputs are negative, so LeakyRelu's alpha is exercised.
        #expect(want?.scalars(as: Float.self).contains { $0 < 0 } == true)
    }
}
