import DLGraph
import DLKernels
import DLTensor
import Testing
@testable import DLRuntime

/// Conv → Relu → 2×2 MaxPool through the planned runtime (fused into FusedConvPool, weights
/// packed): on output rows of 16 pixels and more the fused kernel pools each pair of rows, on
/// shorter rows the plan runs the convolution and the pool as two steps; both give the
/// node-by-node result.
struct ConvPoolRuntimeTests {
    @Test(arguments: [(7, 10, 8), (5, 22, 20)])
    func convPoolMatchesNodeByNode(_ h: Int, _ w: Int, _ outW: Int) throws {
        let x = seededRandom([2, 8, h, w], seed: 71)
        let conv = Conv2DParams(batch: 2, inChannels: 8, inH: h, inW: w, outChannels: 24, kernelH: 3, kernelW: 3)
        #expect(conv.outW == outW)
        if PackedMatrix.isSupported {
            // With AVX-512 off (scripts/test's second run) neither takes the fused kernel.
            #expect(Convolution.directMaxPool2Applies(conv))
            #expect(Convolution.directMaxPool2Pays(conv) == (outW >= 16))
        }
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: x.shape))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                          Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
                          Node(opType: "MaxPool", inputs: ["r"], outputs: ["y"], attributes: [
                              Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))]),
                      ],
                      initializers: NamedTensors([("w", seededRandom([24, 8, 3, 3], seed: 72)), ("b", seededRandom([24], seed: 73))]))
        g.metadata.opsetImports = [("", 17)]
        let fused = GraphOptimizer.optimize(g).0
        #expect(fused.nodes.map(\.opType) == ["FusedConvPool"])
        // A plan keeps the fused node only where its kernel takes it; elsewhere it runs the
        // FusedConv and a MaxPool as two steps (unplanned, the kernel falls back to the two).
        var consts: [String: Tensor] = [:]
        for (name, t) in fused.initializers { consts[name] = t }
        var types = consts.mapValues { TensorType(dtype: $0.dtype, shape: $0.shape) }
        types["x"] = TensorType(dtype: .float32, shape: x.shape)
        let steps = ExecutionPlan.unfused(fused.nodes[0], in: fused, types: types, consts: consts, packing: true)
        #expect(steps.map(\.opType) == (PackedMatrix.isSupported && outW >= 16 ? ["FusedConvPool"] : ["FusedConv", "MaxPool"]))
        #expect(ExecutionPlan.unfused(fused.nodes[0], in: fused, types: types, consts: consts, packing: false).map(\.opType) == ["FusedConv", "MaxPool"])
        let want = try #require(try runNodeByNode(g, ["x": x])["y"])
        for options in [RuntimeOptions.default, RuntimeOptions(plans: false)] {
            let have = try #require(try Executor(graph: g, options: options).run(["x": x])["y"])
            #expect(have.shape == want.shape)
            let worst = zip(have.scalars(as: Float.self), want.scalars(as: Float.self)).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-4, "largest difference \(worst), plans \(options.plans)")
        }
    }
}
