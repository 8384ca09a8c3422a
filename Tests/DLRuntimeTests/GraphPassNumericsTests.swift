import DLGraph
import DLRuntime
import DLTensor
import Testing

/// The perfC passes (constant folding, common subexpressions, transpose sinking) change the graph
/// the runtime plans but not its numbers: each graph here runs planned (after the standard passes)
/// and node by node (nothing folded or fused), and the results must agree.
@Suite struct GraphPassNumericsTests {
    /// Runs `g` one node at a time, each node its own graph.
    func stepwise(_ g: Graph, _ feed: [String: Tensor]) throws -> [String: Tensor] {
        try runNodeByNode(g, feed)
    }

    func expectClose(_ a: Tensor?, _ b: Tensor?) {
        guard let a, let b else { Issue.record("missing output"); return }
        #expect(a.shape == b.shape)
        let x = a.scalars(as: Float.self), y = b.scalars(as: Float.self)
        #expect(x.count == y.count)
        #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }

    func constant(_ out: String, _ v: [Int64], scalar: Bool = false) -> Node {
        Node(opType: "Constant", inputs: [], outputs: [out],
             attributes: [Attribute(name: "value", value: .tensor(Tensor(shape: scalar ? [] : [v.count], scalars: v)))])
    }

    /// x [N, 6, 4]: a torch-style reshape through Shape chains (repeated Shapes and Constants),
    /// transposes that cancel around a Relu and a scalar Mul, a Gemm reading a transposed
    /// operand, and the last step of a batch-first transpose picked by Gather.
    func graph() -> Graph {
        let nodes: [Node] = [
            Node(opType: "Shape", inputs: ["x"], outputs: ["s1"]),
            Node(opType: "Shape", inputs: ["x"], outputs: ["s2"]),
            constant("c0", [0], scalar: true), constant("c1", [1], scalar: true), constant("c2", [2], scalar: true),
            constant("ax", [0]), constant("ax2", [0]),
            Node(opType: "Gather", inputs: ["s1", "c0"], outputs: ["n"]),
            Node(opType: "Gather", inputs: ["s2", "c1"], outputs: ["t"]),
            Node(opType: "Gather", inputs: ["s2", "c2"], outputs: ["f"]),
            Node(opType: "Unsqueeze", inputs: ["n", "ax"], outputs: ["n1"]),
            Node(opType: "Unsqueeze", inputs: ["t", "ax2"], outputs: ["t1"]),
            Node(opType: "Unsqueeze", inputs: ["f", "ax"], outputs: ["f1"]),
            Node(opType: "Concat", inputs: ["n1", "t1", "f1"], outputs: ["tnf"], attributes: [Attribute(name: "axis", value: .int(0))]),
            // [N, 6, 4] -> [6, N, 4] and back, through a Relu and a scalar Mul: the transposes cancel.
            Node(opType: "Transpose", inputs: ["x"], outputs: ["xt"], attributes: [Attribute(name: "perm", value: .ints([1, 0, 2]))]),
            Node(opType: "Relu", inputs: ["xt"], outputs: ["xr"]),
            Node(opType: "Mul", inputs: ["xr", "half"], outputs: ["xm"]),
            Node(opType: "Transpose", inputs: ["xm"], outputs: ["back"], attributes: [Attribute(name: "perm", value: .ints([1, 0, 2]))]),
            Node(opType: "Reshape", inputs: ["back", "tnf"], outputs: ["tf2"]),
            // Time first (as an LSTM reads), then back to batch first and the last time step.
            Node(opType: "Transpose", inputs: ["tf2"], outputs: ["sf"], attributes: [Attribute(name: "perm", value: .ints([1, 0, 2]))]),
            Node(opType: "Transpose", inputs: ["sf"], outputs: ["bf"], attributes: [Attribute(name: "perm", value: .ints([1, 0, 2]))]),
            Node(opType: "Gather", inputs: ["bf", "last"], outputs: ["lastStep"], attributes: [Attribute(name: "axis", value: .int(1))]),
            // Gemm on the transposed last step: [4, N]ᵀ.
            Node(opType: "Transpose", inputs: ["lastStep"], outputs: ["lt"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "Gemm", inputs: ["lt", "w", "b"], outputs: ["g"], attributes: [Attribute(name: "transA", value: .int(1))]),
            // A MatMul by a transposed [3, 3] weight: a Gemm with transB.
            Node(opType: "Transpose", inputs: ["v"], outputs: ["vt"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "MatMul", inputs: ["g", "vt"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(6), .fixed(4)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("half", Tensor(shape: [], scalars: [Float(0.5)])),
                                                  ("last", Tensor(shape: [], scalars: [Int64(-1)])),
                                                  ("w", seededRandom([4, 3], seed: 7)), ("b", seededRandom([3], seed: 8)),
                                                  ("v", seededRandom([3, 3], seed: 9))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test func passesKeepTheNumbers() throws {
        let g = graph()
        let (opt, applied) = try GraphOptimizer.optimizeStrict(g)
        #expect(applied.contains("constant-folding"))
        #expect(applied.contains("eliminate-common-subexpressions"))
        #expect(applied.contains("sink-transposes"))
        // Every transpose is gone: cancelled, absorbed by the Gather or by the Gemm's flag.
        #expect(!opt.nodes.contains { $0.opType == "Transpose" })
        #expect(opt.nodes.count < g.nodes.count / 2)
        let exec = try Executor(graph: g)
        for (batch, seed) in [(1, 11), (3, 12)] {
            let x = seededRandom([batch, 6, 4], seed: seed)
            let got = try exec.run(["x": x])["y"]
            let want = try stepwise(g, ["x": x])["y"]
            #expect(got?.shape == [batch, 3])
            expectClose(got, want)
            // The optimised graph itself, node by node, agrees as well.
            expectClose(try stepwise(opt, ["x": x])["y"], want)
        }
    }

    /// A TFLite-style block (MediaPipe's face models): convolutions' outputs moved channels last
    /// for PRelu (slope [1, 1, C]), a residual Add and a channel Pad, and back to channels first
    /// for the next convolution; the PRelu's output has two readers. The transposes meet and go,
    /// PRelu's slope and Pad's pads laid out anew, and the numbers stay.
    @Test func channelsLastPReluPadAndResidualRunChannelsFirst() throws {
        let slope = seededRandom([1, 1, 4], seed: 21).scalars(as: Float.self).map { $0 - 0.5 }
        let nodes: [Node] = [
            Node(opType: "Conv", inputs: ["x", "w1"], outputs: ["c1"]),
            transposeNode("c1", "c1t", [0, 2, 3, 1]),
            Node(opType: "PRelu", inputs: ["c1t", "slope"], outputs: ["p"]),
            transposeNode("p", "pn", [0, 3, 1, 2]),
            Node(opType: "Conv", inputs: ["pn", "w2"], outputs: ["c2"]),
            transposeNode("c2", "c2t", [0, 2, 3, 1]),
            Node(opType: "Add", inputs: ["p", "c2t"], outputs: ["s"]),
            Node(opType: "Pad", inputs: ["s", "pads"], outputs: ["padded"]),
            transposeNode("padded", "pdn", [0, 3, 1, 2]),
            Node(opType: "Conv", inputs: ["pdn", "w3"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 3, 5, 6]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("w1", seededRandom([4, 3, 1, 1], seed: 22)), ("w2", seededRandom([4, 4, 1, 1], seed: 23)),
                                                  ("w3", seededRandom([2, 6, 1, 1], seed: 24)),
                                                  ("slope", Tensor(shape: [1, 1, 4], scalars: slope)),
                                                  // NHWC: two channels more, one before and one after.
                                                  ("pads", Tensor(shape: [8], scalars: [Int64(0), 0, 0, 1, 0, 0, 0, 1]))]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(!opt.nodes.contains { $0.opType == "Transpose" }, "\(opt.nodes.map(\.opType))")
        let x = seededRandom([1, 3, 5, 6], seed: 25)
        let want = try stepwise(g, ["x": x])["y"]
        expectClose(try Executor(graph: g).run(["x": x])["y"], want)
        expectClose(try stepwise(opt, ["x": x])["y"], want)
    }

    /// MediaPipe's channel-padded shortcut: a pooled value goes channels last and has its channels
    /// padded, a convolution of it goes channels last too, their sum goes back channels first for
    /// the next convolution. The Pad runs channels first and every transpose goes.
    @Test func aChannelPaddedShortcutRunsChannelsFirst() throws {
        let nodes: [Node] = [
            Node(opType: "MaxPool", inputs: ["x"], outputs: ["pool"], attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])),
                                                                                  Attribute(name: "strides", value: .ints([2, 2]))]),
            transposeNode("pool", "pt", [0, 2, 3, 1]),
            Node(opType: "Pad", inputs: ["pt", "pads"], outputs: ["padded"]),
            Node(opType: "Conv", inputs: ["pool", "w1"], outputs: ["c1"]),
            transposeNode("c1", "c1t", [0, 2, 3, 1]),
            Node(opType: "Add", inputs: ["padded", "c1t"], outputs: ["s"]),
            transposeNode("s", "sn", [0, 3, 1, 2]),
            Node(opType: "Conv", inputs: ["sn", "w2"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 3, 6, 8]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("w1", seededRandom([5, 3, 1, 1], seed: 41)), ("w2", seededRandom([2, 5, 1, 1], seed: 42)),
                                                  // NHWC: two channels after.
                                                  ("pads", Tensor(shape: [8], scalars: [Int64(0), 0, 0, 0, 0, 0, 0, 2]))]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(!opt.nodes.contains { $0.opType == "Transpose" }, "\(opt.nodes.map(\.opType))")
        let x = seededRandom([1, 3, 6, 8], seed: 43)
        let want = try stepwise(g, ["x": x])["y"]
        expectClose(try Executor(graph: g).run(["x": x])["y"], want)
        expectClose(try stepwise(opt, ["x": x])["y"], want)
    }

    /// TFLite's squeeze-excite block: a depthwise output moved channels last, an activation, its
    /// mean over H and W back to channels first for two 1 x 1 convolutions, their Sigmoid moved
    /// channels last to scale the activation, which goes channels first into the next
    /// convolution. Every transpose goes, the mean runs over the channels-first axes.
    @Test func aSqueezeExciteBlockRunsChannelsFirst() throws {
        let nodes: [Node] = [
            Node(opType: "Conv", inputs: ["x", "dw"], outputs: ["d"], attributes: [Attribute(name: "group", value: .int(4))]),
            transposeNode("d", "dt", [0, 2, 3, 1]),
            Node(opType: "HardSwish", inputs: ["dt"], outputs: ["h"]),
            Node(opType: "ReduceMean", inputs: ["h", "axes"], outputs: ["m"]),
            transposeNode("m", "mn", [0, 3, 1, 2]),
            Node(opType: "Conv", inputs: ["mn", "w1"], outputs: ["c1"]),
            Node(opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
            Node(opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"]),
            transposeNode("c2", "c2t", [0, 2, 3, 1]),
            Node(opType: "Sigmoid", inputs: ["c2t"], outputs: ["s"]),
            Node(opType: "Mul", inputs: ["h", "s"], outputs: ["scaled"]),
            transposeNode("scaled", "sn", [0, 3, 1, 2]),
            Node(opType: "Conv", inputs: ["sn", "w3"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 4, 5, 6]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("dw", seededRandom([4, 1, 1, 1], seed: 51)), ("w1", seededRandom([2, 4, 1, 1], seed: 52)),
                                                  ("w2", seededRandom([4, 2, 1, 1], seed: 53)), ("w3", seededRandom([3, 4, 1, 1], seed: 54)),
                                                  ("axes", Tensor(shape: [2], scalars: [Int64(1), 2]))]))
        g.metadata.opsetImports = [("", 18)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(!opt.nodes.contains { $0.opType == "Transpose" }, "\(opt.nodes.map(\.opType))")
        let x = seededRandom([1, 4, 5, 6], seed: 55)
        let want = try stepwise(g, ["x": x])["y"]
        expectClose(try Executor(graph: g).run(["x": x])["y"], want)
        expectClose(try stepwise(opt, ["x": x])["y"], want)
    }

    /// Zero spatial pads fold into the convolution that reads them: directly (NCHW, onto the
    /// convolution's own pads, asymmetric) and through a channels-last Pad and its Transpose
    /// (TFLite's ZeroPadding2D before a strided VALID convolution). A Pad of the channels stays.
    @Test func spatialZeroPadsFoldIntoTheConvolution() throws {
        func attr(_ n: String, _ v: [Int]) -> Attribute { Attribute(name: n, value: .ints(v)) }
        let nodes: [Node] = [
            Node(opType: "Pad", inputs: ["x", "padsA"], outputs: ["xa"]),
            Node(opType: "Conv", inputs: ["xa", "w1", "b1"], outputs: ["c1"], attributes: [attr("pads", [1, 0, 0, 1])]),
            Node(opType: "Transpose", inputs: ["c1"], outputs: ["c1t"], attributes: [attr("perm", [0, 2, 3, 1])]),
            Node(opType: "Pad", inputs: ["c1t", "padsB"], outputs: ["pb"]),
            Node(opType: "Transpose", inputs: ["pb"], outputs: ["pbn"], attributes: [attr("perm", [0, 3, 1, 2])]),
            Node(opType: "Conv", inputs: ["pbn", "w2"], outputs: ["c2"],
                 attributes: [attr("strides", [2, 2]), Attribute(name: "auto_pad", value: .string("VALID"))]),
            Node(opType: "Pad", inputs: ["c2", "padsC"], outputs: ["pc"]),
            Node(opType: "Conv", inputs: ["pc", "w3"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 2, 7, 6]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([
                          // NCHW: H 1 before 2 after, W 0 before 1 after.
                          ("padsA", Tensor(shape: [8], scalars: [Int64(0), 0, 1, 0, 0, 0, 2, 1])),
                          ("w1", seededRandom([3, 2, 3, 3], seed: 31)), ("b1", seededRandom([3], seed: 32)),
                          // NHWC: H 0 before 1 after, W 1 before 1 after.
                          ("padsB", Tensor(shape: [8], scalars: [Int64(0), 0, 1, 0, 0, 1, 1, 0])),
                          ("w2", seededRandom([4, 3, 3, 3], seed: 33)),
                          // Channels: not a convolution's padding.
                          ("padsC", Tensor(shape: [8], scalars: [Int64(0), 1, 0, 0, 0, 1, 0, 0])),
                          ("w3", seededRandom([2, 6, 1, 1], seed: 34)),
                      ]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, applied) = try GraphOptimizer.optimizeStrict(g)
        #expect(applied.contains(FoldPadIntoConv.name))
        #expect(opt.nodes.filter { $0.opType == "Pad" }.count == 1, "\(opt.nodes.map(\.opType))")
        let x = seededRandom([1, 2, 7, 6], seed: 35)
        let want = try stepwise(g, ["x": x])["y"]
        expectClose(try Executor(graph: g).run(["x": x])["y"], want)
        expectClose(try stepwise(opt, ["x": x])["y"], want)
    }
}
