import DLGraph
import DLKernels
@testable import DLRuntime
import DLTensor
import Testing

/// The patterns third-party exporters write around convolutions (paddle2onnx's separate bias Add
/// and spelled-out HardSwish, torch's SiLU as Sigmoid·x, ReLU6 as Clip) and the float32 kernels
/// real models spend their time in (activations, Max/Min, ConvTranspose, Resize). Fused or fast,
/// each must give the numbers of the general path: the graph run node by node, or the same op on
/// float64 inputs (which only the general kernels take).
@Suite struct RealModelPatternTests {
    func initializer(_ name: String, _ v: [Float], shape: [Int]? = nil) -> (String, Tensor) {
        (name, Tensor(shape: shape ?? [v.count], scalars: v))
    }

    func expectClose(_ a: Tensor?, _ b: Tensor?, tolerance: Float = 2e-5, _ what: String = "") {
        guard let a, let b else { Issue.record("missing output \(what)"); return }
        #expect(a.shape == b.shape, "\(what)")
        let x = a.converted(to: .float32).scalars(as: Float.self), y = b.converted(to: .float32).scalars(as: Float.self)
        #expect(x.count == y.count)
        let bad = zip(x, y).enumerated().first { _, p in
            !(p.0.isNaN && p.1.isNaN) && p.0 != p.1 && !(abs(p.0 - p.1) <= tolerance * max(1, abs(p.1)))
        }
        #expect(bad == nil, "\(what): first difference at \(bad.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")")
    }

    /// x [1, 3, 7, 9] → Conv 3×3 (5 channels, no bias) → per-channel Add → `tail`.
    func convGraph(_ tail: [Node], output: String, extra: [(String, Tensor)] = []) -> Graph {
        let nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"],
                          attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
                     Node(name: "bias", opType: "Add", inputs: ["c", "b"], outputs: ["cb"])] + tail
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 3, 7, 9]))],
                      outputs: [ValueInfo(name: output, type: nil)], nodes: nodes,
                      initializers: NamedTensors([("w", seededRandom([5, 3, 3, 3], seed: 3)),
                                                  ("b", seededRandom([1, 5, 1, 1], seed: 4))] + extra))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    func checkFused(_ g: Graph, passes: [String], leaves: [String], _ what: String) throws {
        let (opt, applied) = try GraphOptimizer.optimizeStrict(g)
        for p in passes { #expect(applied.contains(p), "\(what): \(p) did not fire (\(applied))") }
        for op in leaves { #expect(!opt.nodes.contains { $0.opType == op }, "\(what): \(op) left in \(opt.nodes.map(\.opType))") }
        let x = seededRandom([1, 3, 7, 9], seed: 11)
        let want = try runNodeByNode(g, ["x": x])
        let got = try Executor(graph: g).run(["x": x])
        for o in g.outputs { expectClose(got[o.name], want[o.name], what) }
    }

    @Test func paddleHardSwishAfterABiasAddFoldsIntoTheConv() throws {
        let g = convGraph([
            Node(opType: "Add", inputs: ["cb", "three"], outputs: ["a3"]),
            Node(opType: "Clip", inputs: ["a3", "zero", "six"], outputs: ["cl"]),
            Node(opType: "Mul", inputs: ["cb", "cl"], outputs: ["m"]),
            Node(opType: "Div", inputs: ["m", "sixd"], outputs: ["y"]),
        ], output: "y", extra: [initializer("three", [3]), initializer("zero", [0], shape: []), initializer("six", [6], shape: []),
                                initializer("sixd", [6])])
        try checkFused(g, passes: ["fold-conv-bias", "fuse-hardswish", "fuse-activation"], leaves: ["Add", "Clip", "Div", "Mul", "HardSwish"], "hardswish")
    }

    @Test func siluReluSixSigmoidAndHardSigmoidFuse() throws {
        let silu = convGraph([Node(opType: "Sigmoid", inputs: ["cb"], outputs: ["s"]),
                              Node(opType: "Mul", inputs: ["s", "cb"], outputs: ["y"])], output: "y")
        try checkFused(silu, passes: ["fuse-activation"], leaves: ["Sigmoid", "Mul"], "silu")
        let relu6 = convGraph([Node(opType: "Clip", inputs: ["cb", "zero", "six"], outputs: ["y"])], output: "y",
                              extra: [initializer("zero", [0], shape: []), initializer("six", [0.5], shape: [])])
        try checkFused(relu6, passes: ["fuse-activation"], leaves: ["Clip"], "clip")
        let sig = convGraph([Node(opType: "Sigmoid", inputs: ["cb"], outputs: ["y"])], output: "y")
        try checkFused(sig, passes: ["fuse-activation"], leaves: ["Sigmoid"], "sigmoid")
        let hs = convGraph([Node(opType: "HardSigmoid", inputs: ["cb"], outputs: ["y"],
                                 attributes: [Attribute(name: "alpha", value: .float(0.3)), Attribute(name: "beta", value: .float(0.4))])], output: "y")
        try checkFused(hs, passes: ["fuse-activation"], leaves: ["HardSigmoid"], "hardsigmoid")
    }

    /// openWakeWord's `maximum(leaky_relu(conv(x)), -0.4)`: the Max becomes the floor of the
    /// fused LeakyRelu (one node, the numbers of the three ops); the floor keeps NaN. A Max whose
    /// constant has more dimensions than the output (it would broadcast it) stays.
    @Test func aMaxWithAConstantAfterALeakyReluIsItsFloor() throws {
        let leaky = Node(opType: "LeakyRelu", inputs: ["cb"], outputs: ["l"], attributes: [Attribute(name: "alpha", value: .float(0.2))])
        let g = convGraph([leaky, Node(opType: "Max", inputs: ["l", "floor"], outputs: ["y"])], output: "y",
                          extra: [initializer("floor", [-0.4], shape: [1, 1, 1, 1])])
        try checkFused(g, passes: ["fuse-activation"], leaves: ["LeakyRelu", "Max"], "leaky floor")
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConv"])
        // Outputs below the floor exist (else the test could not tell): alpha 0.2 of values under -2.
        let x = seededRandom([1, 3, 7, 9], seed: 11)
        let y = try #require(try Executor(graph: g).run(["x": x])["y"]).scalars(as: Float.self)
        #expect(y.contains(-0.4) && y.contains { $0 > -0.4 && $0 < 0 })
        let wide = convGraph([leaky, Node(opType: "Max", inputs: ["l", "floor"], outputs: ["y"])], output: "y",
                             extra: [initializer("floor", [-0.4], shape: [1, 1, 1, 1, 1])])
        let (kept, _) = try GraphOptimizer.optimizeStrict(wide)
        #expect(kept.nodes.contains { $0.opType == "Max" })
        #expect(Activation.leakyRelu(alpha: 0.2, floor: -0.4).scalar(.nan).isNaN)
        #expect(Activation.leakyRelu(alpha: 0.2, floor: -0.4).scalar(-10) == -0.4)
        var nan: Float = .nan
        Activation.leakyRelu(alpha: 0.2, floor: -0.4).apply(&nan, count: 1)
        #expect(nan.isNaN)
    }

    /// x [6, 40] → Gemm (bias) [6, 33] → GELU written out in `tail` on "h".
    func gemmGraph(_ tail: [Node], extra: [(String, Tensor)]) -> Graph {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [6, 40]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "w", "b"], outputs: ["h"])] + tail,
                      initializers: NamedTensors([("w", seededRandom([40, 33], seed: 13)), ("b", seededRandom([33], seed: 14)),
                                                  initializer("half", [0.5], shape: []), initializer("one", [1], shape: [])] + extra))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    /// GELU spelled out with Erf after a Gemm, in DLHuggingFace's order, torch's, and with the
    /// scaling as a multiplication, fuses into the Gemm (`activation = "Gelu"`) and gives the
    /// numbers of the ops it replaces; with a third reader of the Gemm's output it stays as it is.
    @Test func geluWrittenOutFusesIntoTheGemm() throws {
        let x = seededRandom([6, 40], seed: 15)
        func check(_ g: Graph, fused: Bool, _ what: String) throws {
            let (opt, _) = try GraphOptimizer.optimizeStrict(g)
            #expect(opt.nodes.contains { $0.opType == "Erf" } == !fused, "\(what): \(opt.nodes.map(\.opType))")
            #expect(opt.nodes.contains { (try? $0.string("activation", default: "")) == "Gelu" } == fused, "\(what)")
            let want = try runNodeByNode(g, ["x": x]), got = try Executor(graph: g).run(["x": x])
            for o in g.outputs { expectClose(got[o.name], want[o.name], tolerance: 1e-5, what) }
        }
        let ours = [Node(opType: "Div", inputs: ["h", "sqrt2"], outputs: ["d"]), Node(opType: "Erf", inputs: ["d"], outputs: ["e"]),
                    Node(opType: "Mul", inputs: ["h", "half"], outputs: ["m"]), Node(opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
                    Node(opType: "Mul", inputs: ["m", "a"], outputs: ["y"])]
        try check(gemmGraph(ours, extra: [initializer("sqrt2", [1.4142135], shape: [])]), fused: true, "ours")
        let torch = [Node(opType: "Mul", inputs: ["h", "rsqrt2"], outputs: ["d"]), Node(opType: "Erf", inputs: ["d"], outputs: ["e"]),
                     Node(opType: "Add", inputs: ["one", "e"], outputs: ["a"]), Node(opType: "Mul", inputs: ["a", "h"], outputs: ["m"]),
                     Node(opType: "Mul", inputs: ["m", "half"], outputs: ["y"])]
        try check(gemmGraph(torch, extra: [initializer("rsqrt2", [0.70710677], shape: [])]), fused: true, "torch")
        var third = gemmGraph(ours + [Node(opType: "Relu", inputs: ["h"], outputs: ["r"])], extra: [initializer("sqrt2", [1.4142135], shape: [])])
        third.outputs.append(ValueInfo(name: "r", type: nil))
        try check(third, fused: false, "third reader")
        let wrongScale = gemmGraph(ours, extra: [initializer("sqrt2", [2], shape: [])])
        try check(wrongScale, fused: false, "not √2")
    }

    @Test func aSiluWhoseInputHasAThirdReaderIsNotFused() throws {
        var g = convGraph([Node(opType: "Sigmoid", inputs: ["cb"], outputs: ["s"]),
                           Node(opType: "Mul", inputs: ["cb", "s"], outputs: ["y"]),
                           Node(opType: "Relu", inputs: ["cb"], outputs: ["r"])], output: "y")
        g.outputs.append(ValueInfo(name: "r", type: nil))
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.contains { $0.opType == "Sigmoid" })
        let x = seededRandom([1, 3, 7, 9], seed: 12)
        let want = try runNodeByNode(g, ["x": x]), got = try Executor(graph: g).run(["x": x])
        expectClose(got["y"], want["y"], "y")
        expectClose(got["r"], want["r"], "r")
    }

    /// A float32 tensor with NaN, ±infinity, zeros and values around every activation's kinks,
    /// of a length that leaves a tail after 16- and 8-lane loops.
    func awkward() -> Tensor {
        var v: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, 3, -3, 6, -6, 2.5, -2.5, 88, -88, 1e-30]
        v += seededRandom([53], seed: 5).scalars(as: Float.self).map { $0 * 8 }
        return Tensor(shape: [v.count], scalars: v)
    }

    /// Runs one node on float32 input (the fast kernels) and on float64 (the general ones).
    func compareWithGeneral(_ node: Node, _ inputs: [Tensor], tolerance: Float = 2e-6) throws {
        func run(_ ts: [Tensor]) throws -> Tensor? {
            let names = node.inputs
            var g = Graph(name: "one", inputs: zip(names, ts).filter { !$0.0.isEmpty }.map { ValueInfo(name: $0.0, type: TensorType(dtype: $0.1.dtype, shape: $0.1.shape)) },
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: [node])
            g.metadata.opsetImports = [("", 17)]
            var feed: [String: Tensor] = [:]
            for (n, t) in zip(names, ts) where !n.isEmpty { feed[n] = t }
            return try Executor(graph: g).run(feed)["y"]
        }
        let fast = try run(inputs)
        let general = try run(inputs.map { $0.dtype == .float32 ? $0.converted(to: .float64) : $0 })
        #expect(fast?.dtype == .float32)
        expectClose(fast, general, tolerance: tolerance, node.opType)
    }

    @Test func fastActivationsMatchTheGeneralKernels() throws {
        let x = awkward()
        for op in ["Sigmoid", "HardSwish", "Relu"] {
            try compareWithGeneral(Node(opType: op, inputs: ["x"], outputs: ["y"]), [x])
        }
        try compareWithGeneral(Node(opType: "HardSigmoid", inputs: ["x"], outputs: ["y"],
                                    attributes: [Attribute(name: "alpha", value: .float(0.25))]), [x])
        try compareWithGeneral(Node(opType: "LeakyRelu", inputs: ["x"], outputs: ["y"],
                                    attributes: [Attribute(name: "alpha", value: .float(0.1))]), [x])
        try compareWithGeneral(Node(opType: "Clip", inputs: ["x", "lo", "hi"], outputs: ["y"]),
                               [x, Tensor(shape: [], scalars: [Float(-1.5)]), Tensor(shape: [], scalars: [Float(6)])])
        try compareWithGeneral(Node(opType: "Clip", inputs: ["x", "", "hi"], outputs: ["y"]),
                               [x, Tensor(shape: [], scalars: [Float(0)]), Tensor(shape: [], scalars: [Float(2)])])
    }

    @Test func fastMaxAndMinBroadcastAndKeepNaN() throws {
        let x = Tensor(shape: [1, 67], scalars: awkward().scalars(as: Float.self))
        let y = Tensor(shape: [3, 1], scalars: [Float.nan, 0.5, -2])
        for op in ["Max", "Min"] {
            try compareWithGeneral(Node(opType: op, inputs: ["a", "b"], outputs: ["y"]), [x, y])
            try compareWithGeneral(Node(opType: op, inputs: ["a", "b"], outputs: ["y"]), [y, x])
            try compareWithGeneral(Node(opType: op, inputs: ["a", "b"], outputs: ["y"]), [x, Tensor(shape: [], scalars: [Float(0.25)])])
        }
    }

    @Test(arguments: [
        // (channels in, per group out, group, kernel, stride, dilation, pads, output_padding, H, W)
        (4, 3, 1, [2, 2], [2, 2], [1, 1], [0, 0, 0, 0], [0, 0], 5, 7),
        (6, 1, 6, [2, 2], [2, 2], [1, 1], [0, 0, 0, 0], [0, 0], 4, 5),
        (4, 2, 2, [3, 3], [2, 1], [1, 2], [1, 0, 2, 1], [1, 0], 6, 3),
        (3, 5, 1, [4, 1], [3, 1], [1, 1], [2, 0, 1, 0], [0, 0], 1, 9),
        (2, 2, 1, [1, 1], [1, 1], [1, 1], [0, 0, 0, 0], [0, 0], 1, 1),
        // A kernel the size of its stride (one tap per output) with pads and output padding.
        (3, 2, 1, [2, 3], [2, 3], [1, 1], [1, 0, 0, 2], [1, 2], 4, 5),
        (2, 3, 1, [2, 2], [2, 2], [1, 1], [0, 1, 1, 0], [0, 1], 3, 37),
        (2, 3, 1, [2, 2], [2, 2], [1, 1], [0, 0, 0, 0], [0, 0], 3, 37),  // rows interleaved 16 columns at a time, and a tail
    ])
    func convTransposeFloatMatchesTheGeneralKernel(_ c: (Int, Int, Int, [Int], [Int], [Int], [Int], [Int], Int, Int)) throws {
        let (cin, mg, group, kernel, strides, dilations, pads, outputPadding, h, w) = c
        let node = Node(opType: "ConvTranspose", inputs: ["x", "w", "b"], outputs: ["y"], attributes: [
            Attribute(name: "group", value: .int(group)), Attribute(name: "strides", value: .ints(strides)),
            Attribute(name: "dilations", value: .ints(dilations)), Attribute(name: "pads", value: .ints(pads)),
            Attribute(name: "output_padding", value: .ints(outputPadding)),
        ])
        try compareWithGeneral(node, [seededRandom([2, cin, h, w], seed: 21), seededRandom([cin, mg] + kernel, seed: 22),
                                      seededRandom([mg * group], seed: 23)], tolerance: 1e-5)
        let noBias = Node(opType: "ConvTranspose", inputs: ["x", "w"], outputs: ["y"], attributes: node.attributes)
        try compareWithGeneral(noBias, [seededRandom([1, cin, h, w], seed: 24), seededRandom([cin, mg] + kernel, seed: 25)], tolerance: 1e-5)
    }

    @Test(arguments: [("nearest", "asymmetric"), ("nearest", "half_pixel"), ("linear", "half_pixel"),
                      ("linear", "align_corners"), ("cubic", "pytorch_half_pixel")])
    func resizeFloatMatchesTheGeneralKernel(_ mode: String, _ coordinates: String) throws {
        let attrs = [Attribute(name: "mode", value: .string(mode)),
                     Attribute(name: "coordinate_transformation_mode", value: .string(coordinates))]
        let x = seededRandom([2, 3, 5, 7], seed: 31)
        for scales: [Float] in [[1, 1, 2, 2], [1, 1, 0.6, 1.7], [1, 2, 1, 3]] {
            try compareWithGeneral(Node(opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"], attributes: attrs),
                                   [x, Tensor(shape: [0], scalars: [Float]()), Tensor(shape: [4], scalars: scales)], tolerance: 1e-5)
        }
        try compareWithGeneral(Node(opType: "Resize", inputs: ["x", "", "", "sz"], outputs: ["y"], attributes: attrs),
                               [x, Tensor(shape: [0], scalars: [Float]()), Tensor(shape: [0], scalars: [Float]()),
                                Tensor(shape: [4], scalars: [Int64(2), 3, 11, 4])], tolerance: 1e-5)
    }

    @Test(arguments: [
        // (channels, kernel, strides, dilations, pads, H, W)
        (5, [3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 7, 19),
        (4, [5, 5], [2, 2], [1, 1], [2, 2, 2, 2], 9, 37),
        (3, [3, 3], [3, 2], [2, 1], [0, 1, 2, 0], 11, 17),
        (2, [1, 1], [1, 1], [1, 1], [0, 0, 0, 0], 1, 1),
        (6, [3, 1], [2, 1], [1, 1], [1, 0, 1, 0], 8, 3),
        (3, [3, 3], [1, 3], [1, 1], [1, 1, 1, 1], 5, 50),  // gathered columns, 17 wide: two blocks a row
    ])
    func depthwiseConvMatchesTheGeneralKernel(_ c: (Int, [Int], [Int], [Int], [Int], Int, Int)) throws {
        let (channels, kernel, strides, dilations, pads, h, w) = c
        let node = Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: [
            Attribute(name: "group", value: .int(channels)), Attribute(name: "strides", value: .ints(strides)),
            Attribute(name: "dilations", value: .ints(dilations)), Attribute(name: "pads", value: .ints(pads)),
        ])
        try compareWithGeneral(node, [seededRandom([2, channels, h, w], seed: 41), seededRandom([channels, 1] + kernel, seed: 42),
                                      seededRandom([channels], seed: 43)], tolerance: 1e-5)
    }

    @Test func depthwiseConvWithAFusedHardSwish() throws {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 4, 9, 21]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: [
                              Attribute(name: "group", value: .int(4)), Attribute(name: "pads", value: .ints([2, 2, 2, 2])),
                              Attribute(name: "strides", value: .ints([2, 2]))]),
                          Node(opType: "HardSwish", inputs: ["c"], outputs: ["y"]),
                      ],
                      initializers: NamedTensors([("w", seededRandom([4, 1, 5, 5], seed: 44)), ("b", seededRandom([4], seed: 45))]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConv"])
        let x = seededRandom([1, 4, 9, 21], seed: 46)
        expectClose(try Executor(graph: g).run(["x": x])["y"], try runNodeByNode(g, ["x": x])["y"], "depthwise + hardswish")
    }

    @Test(arguments: [([3, 1], [1, 0, 1, 0], [1, 1]), ([5, 1], [0, 0, 2, 0], [2, 1]), ([1, 1], [0, 0, 0, 0], [1, 1])])
    func convsLaidOutAsOneRowMatchTheGeneralKernel(_ kernel: [Int], _ pads: [Int], _ dilations: [Int]) throws {
        let node = Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: [
            Attribute(name: "pads", value: .ints(pads)), Attribute(name: "dilations", value: .ints(dilations))])
        try compareWithGeneral(node, [seededRandom([2, 5, 9, 7], seed: 49), seededRandom([6, 5] + kernel, seed: 50),
                                      seededRandom([6], seed: 52)], tolerance: 1e-5)
    }

    /// 1×1 convolutions of 1×1 images (squeeze-excite blocks, classifier heads) run as one
    /// product over the batch with the weight read in place: with and without a bias, and with a
    /// fused activation against the unfused graph.
    @Test func onePixelConvolutionsMatchTheGeneralKernel() throws {
        let x = seededRandom([3, 40, 1, 1], seed: 61), w = seededRandom([70, 40, 1, 1], seed: 62), b = seededRandom([70], seed: 63)
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"]), [x, w, b], tolerance: 1e-5)
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"]), [x, w], tolerance: 1e-5)
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [3, 40, 1, 1]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                          Node(opType: "HardSigmoid", inputs: ["c"], outputs: ["y"]),
                      ], initializers: NamedTensors([("w", w), ("b", b)]))
        g.metadata.opsetImports = [("", 17)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConv"])
        expectClose(try Executor(graph: g).run(["x": x])["y"], try runNodeByNode(g, ["x": x])["y"], tolerance: 1e-5, "one pixel + hardsigmoid")
    }

    /// relu(conv(x, w, b) + r), x and r graph inputs (r of the convolution's output shape, a
    /// 1 × 1 convolution's), w and b initializers.
    static func convAddRelu(x shape: [Int], w: Tensor, b: Tensor) -> Graph {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: shape)),
                                          ValueInfo(name: "r", type: TensorType(dtype: .float32, shape: [shape[0], w.shape[0]] + shape.dropFirst(2)))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"]),
                          Node(opType: "Add", inputs: ["c", "r"], outputs: ["s"]),
                          Node(opType: "Relu", inputs: ["s"], outputs: ["y"]),
                      ], initializers: NamedTensors([("w", w), ("b", b)]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    /// Pointwise convolutions on planes the direct kernel's 32-pixel tiles fill poorly (7 × 7,
    /// 10 × 10, 14 × 14) run as the transposed product: against the float64 general kernel,
    /// with a residual and an activation fused, and with the weight packed as the product's
    /// panels (an initializer at the plan's shapes) giving the bits of the weight read in place.
    @Test(arguments: [7, 10, 14])
    func pointwiseConvolutionsOnSmallPlanesRunByPixels(_ side: Int) throws {
        #expect(Convolution.pointwiseByPixelsPays(pixels: side * side))
        let x = seededRandom([2, 40, side, side], seed: 71), w = seededRandom([70, 40, 1, 1], seed: 72)
        let b = seededRandom([70], seed: 73), r = seededRandom([2, 70, side, side], seed: 74)
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"]), [x, w, b], tolerance: 1e-5)
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"]), [x, w], tolerance: 1e-5)
        let g = Self.convAddRelu(x: x.shape, w: w, b: b)
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConvAdd"])
        let fused = try Executor(graph: g).run(["x": x, "r": r])["y"]
        expectClose(fused, try runNodeByNode(g, ["x": x, "r": r])["y"], tolerance: 1e-5, "pointwise + residual + relu")
        // The weight fed instead: read in place, not packed, and the same bits.
        var fed = g
        fed.initializers = NamedTensors([("b", b)])
        fed.inputs.append(ValueInfo(name: "w", type: TensorType(dtype: .float32, shape: [70, 40, 1, 1])))
        expectClose(fused, try Executor(graph: fed).run(["x": x, "r": r, "w": w])["y"], tolerance: 0, "packed against in place")
    }

    /// A pointwise convolution with few output channels on a plane of whole 32-pixel tiles is
    /// cut into rows of whole tiles (56 × 56: 7 rows of 448 pixels), so that two workers share it
    /// out: the same bits on one worker and on two, and the float64 general kernel's values, with
    /// a residual and an activation fused.
    @Test func pointwiseConvolutionsWithFewChannelsSplitIntoRows() throws {
        let p = Conv2DParams(batch: 1, inChannels: 24, inH: 56, inW: 56, outChannels: 16, kernelH: 1, kernelW: 1, groups: 1).alongRows
        #expect(p.inH == 7 && p.inW == 448 && p.outH == 7)
        #expect(Conv2DParams(batch: 1, inChannels: 24, inH: 28, inW: 28, outChannels: 16, kernelH: 1, kernelW: 1, groups: 1).alongRows.inH == 1)
        let x = seededRandom([1, 24, 56, 56], seed: 91), w = seededRandom([16, 24, 1, 1], seed: 92)
        let b = seededRandom([16], seed: 93), r = seededRandom([1, 16, 56, 56], seed: 94)
        let g = Self.convAddRelu(x: x.shape, w: w, b: b)
        let feeds = ["x": x, "r": r]
        let one = try ParallelFor.withWorkerCount(1) { try Executor(graph: g).run(feeds)["y"] }
        let two = try ParallelFor.withWorkerCount(2) { try Executor(graph: g).run(feeds)["y"] }
        expectClose(one, two, tolerance: 0, "one worker against two")
        expectClose(one, try runNodeByNode(g, feeds)["y"], tolerance: 1e-5, "pointwise in rows + residual + relu")
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"]), [x, w, b], tolerance: 1e-5)
    }

    /// Convolutions with a kernel whose output plane has under 32 pixels (silero-vad's 1-D
    /// convolutions of a few frames, its STFT's stride 128) run as the product of the im2col
    /// matrix and the weight packed as its panels: the plan packs the weight ("pixels"), and the
    /// outputs match the float64 general kernel, with padding, a residual and an activation fused.
    @Test(arguments: [(9, 4, 8, 0), (3, 1, 3, 1), (1, 1, 3, 1), (15, 1, 3, 1)])
    func kernelConvolutionsOnSmallPlanesRunByPixels(_ length: Int, _ stride: Int, _ kernel: Int, _ pad: Int) throws {
        #expect(Convolution.smallPlanePays(pixels: length, batch: 1) && !Convolution.smallPlanePays(pixels: length, batch: 32))
        let inLength = (length - 1) * stride + kernel - 2 * pad
        let x = seededRandom([2, 5, inLength], seed: 81), w = seededRandom([37, 5, kernel], seed: 82)
        let b = seededRandom([37], seed: 83), r = seededRandom([2, 37, length], seed: 84)
        let attributes = [Attribute(name: "strides", value: .ints([stride])), Attribute(name: "pads", value: .ints([pad, pad]))]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2, 5, inLength])),
                                          ValueInfo(name: "r", type: TensorType(dtype: .float32, shape: [2, 37, length]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: attributes),
                          Node(opType: "Add", inputs: ["c", "r"], outputs: ["s"]),
                          Node(opType: "Relu", inputs: ["s"], outputs: ["y"]),
                      ], initializers: NamedTensors([("w", w), ("b", b)]))
        g.metadata.opsetImports = [("", 17)]
        let executor = try Executor(graph: g)
        let (stats, y) = try #require(try executor.planRunStats(["x": x, "r": r]))
        #expect(stats.packedSteps == (PackedMatrix.isSupported ? 1 : 0))
        var wide = g
        wide.initializers = NamedTensors([("w", w.converted(to: .float64)), ("b", b.converted(to: .float64))])
        wide.inputs = [ValueInfo(name: "x", type: TensorType(dtype: .float64, shape: [2, 5, inLength])),
                       ValueInfo(name: "r", type: TensorType(dtype: .float64, shape: [2, 37, length]))]
        let general = try Executor(graph: wide).run(["x": x.converted(to: .float64), "r": r.converted(to: .float64)])["y"]
        expectClose(y["y"], general, tolerance: 1e-5, "length \(length) stride \(stride) kernel \(kernel)")
        try compareWithGeneral(Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes), [x, w], tolerance: 1e-5)
    }

    @Test func aConv1DDownAOneColumnImageMatchesTheGeneralKernel() throws {
        let node = Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: [
            Attribute(name: "pads", value: .ints([2, 0, 1, 0])), Attribute(name: "strides", value: .ints([2, 1]))])
        try compareWithGeneral(node, [seededRandom([1, 6, 45, 1], seed: 47), seededRandom([7, 6, 5, 1], seed: 48)], tolerance: 1e-5)
    }

    @Test(arguments: [DType.uint8, .int8])
    func quantizeDequantizePairsFuseAndKeepTheNumbers(_ zeroType: DType) throws {
        let zero = zeroType == .uint8 ? Tensor(shape: [], scalars: [UInt8(128)]) : Tensor(shape: [], scalars: [Int8(-3)])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [67]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
                          Node(opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"]),
                          Node(opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["y"]),
                      ],
                      initializers: NamedTensors([("s", Tensor(shape: [], scalars: [Float(0.05)])), ("z", zero)]))
        g.metadata.opsetImports = [("", 19)]
        let (opt, _) = try GraphOptimizer.optimizeStrict(g)
        #expect(opt.nodes.map(\.opType) == ["QuantizeDequantize"])
        // Ties at ±0.025 (x / scale = ±0.5), saturation at ±20, NaN and infinities from awkward().
        var v = awkward().scalars(as: Float.self)
        v[20] = 0.025; v[21] = -0.025; v[22] = 0.075; v[23] = 20; v[24] = -20
        let x = Tensor(shape: [67], scalars: v)
        expectClose(try Executor(graph: g).run(["x": x])["y"], try runNodeByNode(g, ["x": x])["y"], tolerance: 0, "qdq \(zeroType)")
    }

    /// onnxruntime.quantization's HardSwish between two quantized convolutions, on every byte:
    /// x → DequantizeLinear → HardSigmoid → Quantize/DequantizeLinear → Mul with the dequantized x
    /// (and a scalar constant) → QuantizeLinear. `tail` extra nodes read the island's values.
    func quantizedHardSwish(_ zeroType: DType, scale: Tensor = Tensor(shape: [1], scalars: [Float(1)]),
                            extraOutputs: [String] = []) -> Graph {
        func zero(_ u: UInt8, _ i: Int8) -> Tensor { zeroType == .uint8 ? Tensor(shape: [], scalars: [u]) : Tensor(shape: [], scalars: [i]) }
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: zeroType, shape: [2, 128]))],
                      outputs: ([ "y"] + extraOutputs).map { ValueInfo(name: $0, type: nil) }, nodes: [
                          Node(opType: "DequantizeLinear", inputs: ["x", "s1", "z1"], outputs: ["a"]),
                          Node(opType: "HardSigmoid", inputs: ["a"], outputs: ["h"],
                               attributes: [Attribute(name: "alpha", value: .float(1 / 6))]),
                          Node(opType: "QuantizeLinear", inputs: ["h", "s2", "z2"], outputs: ["hq"]),
                          Node(opType: "DequantizeLinear", inputs: ["hq", "s2", "z2"], outputs: ["hd"]),
                          Node(opType: "Mul", inputs: ["a", "hd"], outputs: ["m"]),
                          Node(opType: "Mul", inputs: ["m", "k"], outputs: ["mk"]),
                          Node(opType: "QuantizeLinear", inputs: ["mk", "s3", "z3"], outputs: ["y"]),
                      ],
                      initializers: NamedTensors([("s1", Tensor(shape: [], scalars: [Float(0.047)])), ("z1", zero(121, -7)),
                                                  ("s2", Tensor(shape: [], scalars: [Float(1.0 / 255)])), ("z2", zero(0, -128)),
                                                  ("s3", Tensor(shape: [], scalars: [Float(0.031)])), ("z3", zero(37, -91)),
                                                  ("k", scale)]))
        g.metadata.opsetImports = [("", 19)]
        return g
    }

    /// Every byte value, as x [2, 128] of `type`.
    func everyByte(_ type: DType) -> Tensor {
        type == .uint8 ? Tensor(shape: [2, 128], scalars: (0..<256).map { UInt8($0) })
            : Tensor(shape: [2, 128], scalars: (0..<256).map { Int8(bitPattern: UInt8($0)) })
    }

    @Test(arguments: [DType.uint8, .int8])
    func aQuantizedElementwiseIslandBecomesOneTableWithTheSameBytes(_ zeroType: DType) throws {
        let g = quantizedHardSwish(zeroType)
        let (opt, _) = try GraphOptimizer.optimizeStrict(g, passes: GraphOptimizer.runtime)
        #expect(opt.nodes.map(\.opType) == ["LookupTable"])
        let x = everyByte(zeroType)
        let fused = try #require(try Executor(graph: g).run(["x": x])["y"])
        let reference = try #require(try runNodeByNode(g, ["x": x])["y"])
        #expect(fused.dtype == zeroType && fused.shape == [2, 128])
        #expect(fused == reference)
        // Not a constant table: the island maps the 256 bytes to many.
        #expect(Set(fused.converted(to: .float32).scalars(as: Float.self)).count > 100)
    }

    @Test func anIslandReadFromOutsideOrBroadcastPerChannelStaysAsItIs() throws {
        // A value inside is also a graph output: the float ops must still run.
        var (opt, _) = try GraphOptimizer.optimizeStrict(quantizedHardSwish(.uint8, extraOutputs: ["m"]), passes: GraphOptimizer.runtime)
        #expect(!opt.nodes.contains { $0.opType == "LookupTable" })
        // A constant with one value per row: the output depends on where a byte is.
        let perRow = quantizedHardSwish(.uint8, scale: Tensor(shape: [2, 1], scalars: [Float(1), 2]))
        (opt, _) = try GraphOptimizer.optimizeStrict(perRow, passes: GraphOptimizer.runtime)
        #expect(!opt.nodes.contains { $0.opType == "LookupTable" })
        // One value, but of rank 3 against x's 2: it would make the output [1, 2, 128].
        let higher = quantizedHardSwish(.uint8, scale: Tensor(shape: [1, 1, 1], scalars: [Float(1)]))
        (opt, _) = try GraphOptimizer.optimizeStrict(higher, passes: GraphOptimizer.runtime)
        #expect(!opt.nodes.contains { $0.opType == "LookupTable" })
        let x = everyByte(.uint8)
        #expect(try Executor(graph: higher).run(["x": x])["y"]?.shape == [1, 2, 128])
    }

    /// A nearest resize of the last two axes runs as one pass over the output (rows that read
    /// the same input row copied whole): the values of the separable float64 path, up, down and
    /// mixed, and the input's -0 and NaN copied as they are.
    @Test(arguments: [[2, 3, 10, 14], [2, 3, 11, 4], [2, 3, 3, 7], [2, 3, 5, 9]])
    func nearestResizeOfTheLastTwoAxesIsOnePass(_ sizes: [Int]) throws {
        var v: [Float] = (0..<(2 * 3 * 5 * 7)).map { Float($0) * 0.5 - 9 }
        v[3] = -0.0
        v[8] = .nan
        let x = Tensor(shape: [2, 3, 5, 7], scalars: v)
        let s = Tensor(shape: [4], scalars: sizes.map { Int64($0) } as [Int64])
        let node = Node(opType: "Resize", inputs: ["x", "", "", "sizes"], outputs: ["y"],
                        attributes: [Attribute(name: "mode", value: .string("nearest"))])
        let fast = try #require(try runOne(node, [("x", x), ("sizes", s)]))
        let general = try #require(try runOne(node, [("x", x.converted(to: DType.float64)), ("sizes", s)])).converted(to: DType.float32)
        #expect(fast.shape == sizes && general.shape == sizes)
        let a = fast.scalars(as: Float.self), b = general.scalars(as: Float.self)
        // (The float64 path sums its one tap from zero, so its -0 comes out +0: equal as numbers.)
        #expect(zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
        // Upsampled, every input value appears: -0 as -0, and the NaN.
        if sizes[2] >= 5 && sizes[3] >= 7 { #expect(a.contains { $0 == 0 && $0.sign == .minus } && a.contains { $0.isNaN }) }
    }

    /// Runs one node on `inputs` and returns its output.
    func runOne(_ node: Node, _ inputs: [(String, Tensor)]) throws -> Tensor? {
        var g = Graph(name: "one", inputs: inputs.map { ValueInfo(name: $0.0, type: TensorType(dtype: $0.1.dtype, shape: $0.1.shape)) },
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [node])
        g.metadata.opsetImports = [("", 18)]
        return try Executor(graph: g).run(Dictionary(uniqueKeysWithValues: inputs))["y"]
    }

    @Test func whereEqualIsNaNCastAndReductionsMatchTheGeneralKernels() throws {
        let x = Tensor(shape: [1, 67], scalars: awkward().scalars(as: Float.self))
        // Where with a condition broadcast over rows and a scalar branch (torch's masked_fill).
        let cond = Tensor(shape: [3, 1], scalars: [true, false, true])
        try compareWithGeneral(Node(opType: "Where", inputs: ["c", "a", "b"], outputs: ["y"]),
                               [cond, x, Tensor(shape: [], scalars: [-Float.infinity])])
        try compareWithGeneral(Node(opType: "Where", inputs: ["c", "a", "b"], outputs: ["y"]),
                               [Tensor(shape: [1, 67], scalars: x.scalars(as: Float.self).map { $0 > 0 }), Tensor(shape: [2, 1, 1], scalars: [Float(1), 2]), x])
        // Equal as tf2onnx's one-hot: bytes [1, N, 1] against a range [1, 1, K].
        let bytes: [Int32] = [0, 3, 256, 7, 3, -1, 255]
        let range = (0..<257).map { Int32($0) }
        let eq = try runOne(Node(opType: "Equal", inputs: ["a", "b"], outputs: ["y"]),
                            [("a", Tensor(shape: [1, 7, 1], scalars: bytes)), ("b", Tensor(shape: [1, 1, 257], scalars: range))])
        #expect(eq?.shape == [1, 7, 257])
        #expect(eq?.scalars(as: Bool.self) == bytes.flatMap { b in range.map { $0 == b } })
        let feq = try runOne(Node(opType: "Equal", inputs: ["a", "b"], outputs: ["y"]), [("a", x), ("b", Tensor(shape: [], scalars: [Float(3)]))])
        #expect(feq?.scalars(as: Bool.self) == x.scalars(as: Float.self).map { $0 == 3 })
        let nan = try runOne(Node(opType: "IsNaN", inputs: ["a"], outputs: ["y"]), [("a", x)])
        #expect(nan?.scalars(as: Bool.self) == x.scalars(as: Float.self).map(\.isNaN))
        for (from, to, code) in [(Tensor(shape: [4], scalars: [true, false, true, true]), [Float(1), 0, 1, 1], 1),
                                 (Tensor(shape: [4], scalars: [Int64(-5), 0, 1 << 40, 7]), [Float(-5), 0, 1_099_511_627_776, 7], 1),
                                 (Tensor(shape: [4], scalars: [Int32(-5), 0, 70000, 7]), [Float(-5), 0, 70000, 7], 1)] {
            let y = try runOne(Node(opType: "Cast", inputs: ["a"], outputs: ["y"], attributes: [Attribute(name: "to", value: .int(code))]), [("a", from)])
            #expect(y?.dtype == .float32 && y?.scalars(as: Float.self) == to, "\(from.dtype)")
        }
        let big = seededRandom([2, 5, 7, 3], seed: 51)
        for op in ["ReduceSum", "ReduceMean"] {
            for axes: [Int64] in [[1], [1, 2], [3], [0, 1, 2, 3], [-1, -2]] {
                for keep in [0, 1] {
                    try compareWithGeneral(Node(opType: op, inputs: ["x", "axes"], outputs: ["y"],
                                                attributes: [Attribute(name: "keepdims", value: .int(keep))]),
                                           [big, Tensor(shape: [axes.count], scalars: axes)], tolerance: 1e-5)
                }
            }
            // Axes that are not adjacent go the general way, with the same numbers.
            try compareWithGeneral(Node(opType: op, inputs: ["x", "axes"], outputs: ["y"]), [big, Tensor(shape: [2], scalars: [Int64(0), 2])], tolerance: 1e-5)
        }
    }

    /// The comparisons and Where over int32, int64 and float32 (their fast variants) give what
    /// the general kernels give on int16 and float64 operands of the same values: broadcast both
    /// ways, scalars, NaN against everything.
    @Test func comparisonsAndIntegerWhereMatchTheGeneralKernels() throws {
        let ints: [Int64] = (0..<24).map { Int64($0 * 7 % 11) - 5 }, row: [Int64] = [-5, 0, 3, 7]
        var floats = ints.map { Float($0) / 2 }
        floats[3] = .nan
        floats[10] = -.infinity
        func widened(_ t: Tensor) -> Tensor { t.dtype == .float32 ? t.converted(to: .float64) : t.converted(to: .int16) }
        let pairs: [(Tensor, Tensor)] = [
            (Tensor(shape: [2, 3, 4], scalars: ints), Tensor(shape: [4], scalars: row)),
            (Tensor(shape: [2, 3, 4], scalars: ints.map(Int32.init)), Tensor(shape: [], scalars: [Int32(1)])),
            (Tensor(shape: [2, 1, 4], scalars: Array(floats.prefix(8))), Tensor(shape: [3, 1], scalars: [Float.nan, 0.5, -2])),
            (Tensor(shape: [2, 3, 4], scalars: floats), Tensor(shape: [2, 3, 4], scalars: floats.reversed())),
        ]
        for op in ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"] {
            for (a, b) in pairs {
                let node = Node(opType: op, inputs: ["a", "b"], outputs: ["y"])
                let fast = try #require(try runOne(node, [("a", a), ("b", b)]))
                let general = try #require(try runOne(node, [("a", widened(a)), ("b", widened(b))]))
                #expect(fast.dtype == .bool && fast.shape == general.shape, "\(op) \(a.dtype)")
                #expect(fast.scalars(as: Bool.self) == general.scalars(as: Bool.self), "\(op) \(a.dtype) \(a.shape) \(b.shape)")
            }
        }
        let cond = Tensor(shape: [2, 1, 4], scalars: (0..<8).map { $0 % 3 != 0 })
        for (a, b) in [(Tensor(shape: [3, 1], scalars: [Int64(1) << 40, -7, 0]), Tensor(shape: [], scalars: [Int64(-1)])),
                       (Tensor(shape: [3, 4], scalars: (0..<12).map { Int32($0) - 6 }), Tensor(shape: [1, 4], scalars: [Int32(9), -9, 0, 1]))] {
            let node = Node(opType: "Where", inputs: ["c", "a", "b"], outputs: ["y"])
            let fast = try #require(try runOne(node, [("c", cond), ("a", a), ("b", b)]))
            // int64 values past int16 go the general way as int64 too: compare with the op by hand.
            let y = fast.int64s(), av = a.int64s(), bv = b.int64s(), cv = cond.scalars(as: Bool.self)
            #expect(fast.dtype == a.dtype && fast.shape == [2, 3, 4])
            for i in 0..<y.count {
                let (k, r, col) = (i / 12, i / 4 % 3, i % 4)
                let want = cv[k * 4 + col] ? av[a.shape == [3, 1] ? r : r * 4 + col] : bv[b.elementCount == 1 ? 0 : col]
                #expect(y[i] == want, "Where \(a.dtype) at \(i)")
            }
        }
    }

    @Test func constantPadOfFloatsMatchesTheGeneralKernel() throws {
        let x = seededRandom([2, 3, 4, 5], seed: 53)
        for pads: [Int64] in [[0, 0, 1, 2, 0, 0, 3, 1], [1, 0, 0, 0, 0, 2, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]] {
            try compareWithGeneral(Node(opType: "Pad", inputs: ["x", "p", "v"], outputs: ["y"]),
                                   [x, Tensor(shape: [8], scalars: pads), Tensor(shape: [], scalars: [Float(-2.5)])])
            try compareWithGeneral(Node(opType: "Pad", inputs: ["x", "p"], outputs: ["y"]), [x, Tensor(shape: [8], scalars: pads)])
        }
        // Negative pads crop: the general kernel's.
        try compareWithGeneral(Node(opType: "Pad", inputs: ["x", "p"], outputs: ["y"]),
                               [x, Tensor(shape: [8], scalars: [Int64(0), 0, -1, 1, 0, 0, 0, -2])])
    }

    @Test func unitStepSlicesCopyTheBox() throws {
        let v = (0..<120).map { Int64($0) }
        let x = Tensor(shape: [2, 3, 4, 5], scalars: v)
        // starts/ends/axes with negatives and clamping; the box [1, 0..<3, 1..<3, 2..<5].
        let y = try runOne(Node(opType: "Slice", inputs: ["x", "s", "e", "a"], outputs: ["y"]),
                           [("x", x), ("s", Tensor(shape: [3], scalars: [Int64(1), -3, 2])), ("e", Tensor(shape: [3], scalars: [Int64(9), 3, 100])),
                            ("a", Tensor(shape: [3], scalars: [Int64(0), 2, -1]))])
        var want: [Int64] = []
        for b in 1..<2 { for c in 0..<3 { for h in 1..<3 { for w in 2..<5 { want.append(Int64(((b * 3 + c) * 4 + h) * 5 + w)) } } } }
        #expect(y?.shape == [1, 3, 2, 3])
        #expect(y?.scalars(as: Int64.self) == want)
        let empty = try runOne(Node(opType: "Slice", inputs: ["x", "s", "e"], outputs: ["y"]),
                               [("x", x), ("s", Tensor(shape: [1], scalars: [Int64(3)])), ("e", Tensor(shape: [1], scalars: [Int64(1)]))])
        #expect(empty?.shape == [0, 3, 4, 5])
    }
}
