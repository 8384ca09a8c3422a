import DLGraph
import DLRuntime
import DLTensor
import Testing

/// A PRelu with one slope per channel fused into the convolution before it (`FuseActivation`,
/// `FuseConvAdd`): every convolution path applies the slope of each output channel in its
/// epilogue (rows of the direct and Winograd kernels, columns of the transposed product, planes of
/// the depthwise kernel, channels of the im2col driver), and gives what Conv then PRelu give.
struct FusedPReluTests {
    struct Case: Sendable, CustomStringConvertible {
        let description: String
        let x: [Int], w: [Int]
        var strides: [Int]? = nil
        var pads: [Int]? = nil
        var group = 1
        var residual = false
        /// The slope's shape: [C, 1, 1] (rank-4 output) unless given.
        var slopeShape: [Int]? = nil
        /// The weight a float16 initializer behind a Cast (TFLite's fp16 models), so only the
        /// bias tells the channels before the plan evaluates the Cast.
        var halfWeight = false
    }

    static let cases: [Case] = [
        Case(description: "3 x 3 direct", x: [1, 4, 16, 16], w: [8, 4, 3, 3], pads: [1, 1, 1, 1]),
        Case(description: "3 x 3 with 32 channels (Winograd)", x: [1, 32, 12, 12], w: [32, 32, 3, 3], pads: [1, 1, 1, 1]),
        Case(description: "3 x 3 stride 2 of an RGB image", x: [1, 3, 17, 17], w: [16, 3, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
        Case(description: "grouped, two groups", x: [1, 8, 10, 10], w: [8, 4, 3, 3], pads: [1, 1, 1, 1], group: 2),
        Case(description: "1 x 1 on 7 x 7 (transposed product)", x: [1, 16, 7, 7], w: [24, 16, 1, 1], slopeShape: [1, 24, 1, 1]),
        Case(description: "1 x 1 of 1 x 1 images", x: [2, 16, 1, 1], w: [8, 16, 1, 1]),
        Case(description: "depthwise, planes", x: [1, 8, 12, 20], w: [8, 1, 3, 3], pads: [1, 1, 1, 1], group: 8),
        Case(description: "depthwise on 7 x 7 (channels last otherwise)", x: [1, 32, 7, 7], w: [32, 1, 3, 3], pads: [1, 1, 1, 1], group: 32),
        Case(description: "stride 3 (im2col)", x: [1, 4, 40, 40], w: [6, 4, 3, 3], strides: [3, 3]),
        Case(description: "1 x 1 with a residual", x: [1, 8, 10, 10], w: [8, 8, 1, 1], residual: true),
        Case(description: "1 x 1 with a residual, float16 weight", x: [1, 8, 10, 10], w: [8, 8, 1, 1], residual: true, halfWeight: true),
        Case(description: "3 x 3, float16 weight", x: [1, 4, 16, 16], w: [8, 4, 3, 3], pads: [1, 1, 1, 1], halfWeight: true),
        Case(description: "1-D", x: [1, 4, 20], w: [6, 4, 3], slopeShape: [6, 1]),
    ]

    func graph(_ c: Case) -> Graph {
        let channels = c.w[0]
        var attributes: [Attribute] = [Attribute(name: "group", value: .int(c.group))]
        if let s = c.strides { attributes.append(Attribute(name: "strides", value: .ints(s))) }
        if let p = c.pads { attributes.append(Attribute(name: "pads", value: .ints(p))) }
        // Slopes of both signs and sizes, one per channel.
        let slopes = (0..<channels).map { Float($0 % 5) * 0.3 - 0.5 }
        let slopeShape = c.slopeShape ?? [channels, 1, 1]
        attributes.append(Attribute(name: "kernel_shape", value: .ints(Array(c.w.dropFirst(2)))))
        var nodes = [Node(opType: "Conv", inputs: ["x", c.halfWeight ? "w32" : "w", "b"], outputs: ["c"], attributes: attributes)]
        if c.halfWeight {
            nodes.insert(Node(opType: "Cast", inputs: ["w16"], outputs: ["w32"], attributes: [Attribute(name: "to", value: .int(1))]), at: 0)
        }
        var inputs = [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: c.x))]
        var pre = "c"
        if c.residual {
            nodes.append(Node(opType: "Add", inputs: ["c", "r"], outputs: ["s"]))
            inputs.append(ValueInfo(name: "r", type: TensorType(dtype: .float32, shape: [c.x[0], channels] + c.x.dropFirst(2))))
            pre = "s"
        }
        nodes.append(Node(opType: "PRelu", inputs: [pre, "slope"], outputs: ["y"]))
        var g = Graph(name: "g", inputs: inputs, outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([c.halfWeight ? ("w16", seededRandom(c.w, seed: 61).converted(to: .float16)) : ("w", seededRandom(c.w, seed: 61)),
                                                  ("b", seededRandom([channels], seed: 62)),
                                                  ("slope", Tensor(shape: slopeShape, scalars: slopes))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test(arguments: cases)
    func fusedPReluGivesConvThenPRelu(_ c: Case) throws {
        let g = graph(c)
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(!opt.nodes.contains { $0.opType == "PRelu" }, "\(opt.nodes.map(\.opType))")
        var feed = ["x": seededRandom(c.x, seed: 63)]
        if c.residual { feed["r"] = seededRandom([c.x[0], c.w[0]] + c.x.dropFirst(2), seed: 64) }
        let want = try #require(try runNodeByNode(g, feed)["y"])
        let e = try Executor(graph: g)
        for _ in 0..<2 {  // the first run plans, the second runs the plan
            let got = try #require(try e.run(feed)["y"])
            #expect(got.shape == want.shape)
            let x = got.scalars(as: Float.self), y = want.scalars(as: Float.self)
            #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "\(c)")
            // Some outputs are negative, so the slopes mattered.
            #expect(y.contains { $0 < 0 })
        }
    }

    /// Conv, PRelu and a 2 x 2 max pool: the pooled direct kernel (`FusedConvPool`) applies the
    /// slopes before it pools.
    @Test func aPooledConvolutionAppliesTheSlopesBeforeThePool() throws {
        var g = graph(Case(description: "", x: [1, 4, 32, 32], w: [16, 4, 3, 3], pads: [1, 1, 1, 1]))
        g.nodes[g.nodes.count - 1].outputs = ["p"]
        g.nodes.append(Node(opType: "MaxPool", inputs: ["p"], outputs: ["y"],
                            attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))]))
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConvPool"], "\(opt.nodes.map(\.opType))")
        let feed = ["x": seededRandom([1, 4, 32, 32], seed: 65)]
        let want = try #require(try runNodeByNode(g, feed)["y"]).scalars(as: Float.self)
        let e = try Executor(graph: g)
        for _ in 0..<2 {
            let got = try #require(try e.run(feed)["y"]).scalars(as: Float.self)
            #expect(got.count == want.count && zip(got, want).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        }
        #expect(want.contains { $0 < 0 })
    }

    /// MediaPipe's order: the residual Add fuses into the convolution first, and the PRelu after
    /// it, channels last between transposes, becomes fusable only once the transposes are gone
    /// (its slope laid out channels first): it then joins the FusedConvAdd.
    @Test func aPReluFreedFromItsTransposesJoinsTheFusedConvAdd() throws {
        let slopes = (0..<8).map { Float($0 % 3) * 0.4 - 0.6 }
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 8, 6, 6])),
                                          ValueInfo(name: "r", type: TensorType(dtype: .float32, shape: [1, 8, 6, 6]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                              Node(opType: "Add", inputs: ["c", "r"], outputs: ["s"]),
                              transposeNode("s", "st", [0, 2, 3, 1]),
                              Node(opType: "PRelu", inputs: ["st", "slope"], outputs: ["p"]),
                              transposeNode("p", "pn", [0, 3, 1, 2]),
                              Node(opType: "Conv", inputs: ["pn", "w2"], outputs: ["y"])],
                      initializers: NamedTensors([("w", seededRandom([8, 8, 1, 1], seed: 71)), ("b", seededRandom([8], seed: 72)),
                                                  ("w2", seededRandom([4, 8, 1, 1], seed: 73)),
                                                  ("slope", Tensor(shape: [1, 1, 8], scalars: slopes))]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConvAdd", "Conv"], "\(opt.nodes.map(\.opType))")
        let feed = ["x": seededRandom([1, 8, 6, 6], seed: 74), "r": seededRandom([1, 8, 6, 6], seed: 75)]
        let want = try #require(try runNodeByNode(g, feed)["y"]).scalars(as: Float.self)
        let got = try #require(try Executor(graph: g).run(feed)["y"]).scalars(as: Float.self)
        #expect(got.count == want.count && zip(got, want).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
    }

    /// A slope that does not run along the channels (channels last, [1, 1, C]) stays a PRelu.
    @Test func aSlopeAlongAnotherAxisIsNotFused() throws {
        var g = graph(Case(description: "", x: [1, 4, 6, 8], w: [8, 4, 1, 1], slopeShape: [1, 1, 8]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.contains { $0.opType == "PRelu" })
    }
}
