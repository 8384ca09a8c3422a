import DLGraph
import DLTensor
import Testing

/// Transpose sinking and cancellation: what disappears, what moves, and what must stay.
@Suite struct SinkTransposesTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func transpose(_ x: String, _ y: String, _ perm: [Int]) -> Node {
        Node(opType: "Transpose", inputs: [x], outputs: [y], attributes: [Attribute(name: "perm", value: .ints(perm))])
    }

    @Test func inversePermutationsCancelThroughElementwiseOps() throws {
        var g = Graph(name: "g", inputs: [info("x", [2, 3, 4])], outputs: [info("y", [2, 3, 4])], nodes: [
            transpose("x", "t", [1, 2, 0]),
            Node(opType: "Relu", inputs: ["t"], outputs: ["r"]),
            Node(opType: "Mul", inputs: ["r", "half"], outputs: ["m"]),
            transpose("m", "u", [2, 0, 1]),
            Node(opType: "Sigmoid", inputs: ["u"], outputs: ["y"]),
        ], initializers: NamedTensors([("half", Tensor(shape: [], scalars: [Float(0.5)]))]))
        let before = try g.inferTypes()["y"]
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Relu", "Mul", "Sigmoid"])
        #expect(g.nodes[0].inputs == ["x"])
        #expect(try g.inferTypes()["y"] == before)
    }

    @Test func composesTransposesThatDoNotCancel() throws {
        var g = Graph(name: "g", inputs: [info("x", [2, 3, 4])], outputs: [info("y", [4, 2, 3])], nodes: [
            transpose("x", "t", [1, 0, 2]),
            transpose("t", "y", [2, 1, 0]),
        ])
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.count == 1)
        #expect(try g.nodes[0].ints("perm") == [2, 0, 1])
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [4, 2, 3])
    }

    @Test func gatherOfABatchFirstTransposeReadsTheSourceAndTheTransposeGoes() throws {
        // torch: lstm_out.transpose(0, 1)[:, -1] -- the last time step.
        var g = Graph(name: "g", inputs: [info("seq", [5, 2, 8])], outputs: [info("y", [2, 8])], nodes: [
            transpose("seq", "bf", [1, 0, 2]),
            Node(opType: "Gather", inputs: ["bf", "last"], outputs: ["y"], attributes: [Attribute(name: "axis", value: .int(1))]),
        ], initializers: NamedTensors([("last", Tensor(shape: [], scalars: [Int64(-1)]))]))
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Gather"])
        #expect(g.nodes[0].inputs == ["seq", "last"])
        #expect(try g.nodes[0].int("axis", default: 0) == 0)
    }

    @Test func aSqueezeBetweenBatchFirstTransposesLetsThemCancel() throws {
        // OpenVINO's LSTMSequence between two layers: Y [seq, dirs, batch, hidden] to batch first,
        // the directions squeezed, then back to sequence first for the next layer.
        var g = Graph(name: "g", inputs: [info("y", [5, 1, 2, 8])], outputs: [info("out", [5, 2, 8])], nodes: [
            transpose("y", "bf", [2, 1, 0, 3]),
            Node(opType: "Squeeze", inputs: ["bf", "one"], outputs: ["sq"]),
            transpose("sq", "x2", [1, 0, 2]),
            Node(opType: "Tanh", inputs: ["x2"], outputs: ["out"]),
        ], initializers: NamedTensors([("one", Tensor(shape: [1], scalars: [Int64(1)]))]))
        let before = try g.inferTypes()["out"]
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Squeeze", "Tanh"])
        #expect(g.nodes[0].inputs == ["y", "one"])
        #expect(try g.inferTypes()["out"] == before)
    }

    @Test func aSqueezeOfMovedAxesGetsTheSourceAxes() throws {
        var g = Graph(name: "g", inputs: [info("x", [1, 2, 3])], outputs: [info("y", [3, 2])], nodes: [
            transpose("x", "t", [1, 0, 2]),
            Node(opType: "Squeeze", inputs: ["t", "axis"], outputs: ["s"]),
            transpose("s", "y", [1, 0]),
        ], initializers: NamedTensors([("axis", Tensor(shape: [1], scalars: [Int64(-2)]))]))
        let before = try g.inferTypes()["y"]
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Squeeze", "Transpose"])
        #expect(g.initializers[g.nodes[0].inputs[1]]?.scalars(as: Int64.self) == [0])
        #expect(try g.nodes[1].ints("perm") == [1, 0])
        #expect(try g.inferTypes()["y"] == before)
    }

    @Test func leavesASqueezedTransposeWithNowhereToGo() {
        var g = Graph(name: "g", inputs: [info("x", [1, 2, 3])], outputs: [info("y", [3, 2])], nodes: [
            transpose("x", "t", [2, 0, 1]),
            Node(opType: "Squeeze", inputs: ["t", "axis"], outputs: ["y"]),
        ], initializers: NamedTensors([("axis", Tensor(shape: [1], scalars: [Int64(1)]))]))
        #expect(!SinkTransposes.run(&g))
        #expect(g.nodes.map(\.opType) == ["Transpose", "Squeeze"])
    }

    @Test func gemmTakesATransposedOperandByItsFlag() throws {
        var g = Graph(name: "g", inputs: [info("x", [6, 2])], outputs: [info("y", [2, 3])], nodes: [
            transpose("x", "xt", [1, 0]),
            Node(opType: "Gemm", inputs: ["xt", "w"], outputs: ["y"], attributes: [Attribute(name: "transB", value: .int(1))]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [3, 6]))]))
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Gemm"])
        #expect(try g.nodes[0].int("transA", default: 0) == 1)
        #expect(try g.nodes[0].int("transB", default: 0) == 1)
    }

    @Test func aTwoDimensionalMatMulOfATransposeBecomesAGemm() throws {
        var g = Graph(name: "g", inputs: [info("x", [2, 6])], outputs: [info("y", [2, 3])], nodes: [
            transpose("w", "wt", [1, 0]),
            Node(opType: "MatMul", inputs: ["x", "wt"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [3, 6]))]))
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Gemm"])
        #expect(g.nodes[0].inputs == ["x", "w"])
        #expect(try g.nodes[0].int("transB", default: 0) == 1)
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [2, 3])
    }

    @Test func residualAddsOfChannelsLastTransposesRunChannelsFirst() throws {
        // As TFLite files import: convolution outputs (NCHW) moved channels last for a residual
        // Add, and back to channels first for the next convolution.
        let nchw = [1, 4, 3, 5]
        var g = Graph(name: "g", inputs: [info("a", nchw), info("b", [1, 4, 1, 1]), info("c", nchw)],
                      outputs: [info("y", nchw), info("z", [1, 3, 5, 4])], nodes: [
            transpose("a", "ta", [0, 2, 3, 1]),
            transpose("b", "tb", [0, 2, 3, 1]),
            Node(opType: "Add", inputs: ["ta", "tb"], outputs: ["s"]),
            transpose("s", "sn", [0, 3, 1, 2]),
            Node(opType: "Relu", inputs: ["sn"], outputs: ["y"]),
            transpose("c", "tc", [0, 2, 3, 1]),
            Node(opType: "Add", inputs: ["s", "tc"], outputs: ["z"]),
        ])
        let before = try g.inferTypes()
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        // One transpose is left, for the channels-last graph output.
        #expect(g.nodes.map(\.opType).sorted() == ["Add", "Add", "Relu", "Transpose"])
        #expect(g.nodes.first { $0.outputs == ["z"] }?.opType == "Transpose")
        let relu = g.nodes.first { $0.opType == "Relu" }
        #expect(g.nodes.first { $0.outputs == relu?.inputs }?.opType == "Add")
        let after = try g.inferTypes()
        #expect(after["y"] == before["y"] && after["z"] == before["z"])
    }

    @Test func aChannelPaddedShortcutRunsChannelsFirst() throws {
        // MediaPipe's face models: a pooled value (NCHW) goes channels last, its channels are
        // padded, and it is added to a convolution's output moved channels last; the sum goes
        // back to channels first for the next convolution. The numbers: GraphPassNumericsTests.
        var g = Graph(name: "g", inputs: [info("pool", [1, 2, 3, 3]), info("conv", [1, 4, 3, 3])],
                      outputs: [info("y", [1, 4, 3, 3])], nodes: [
            transpose("pool", "tp", [0, 2, 3, 1]),
            Node(opType: "Pad", inputs: ["tp", "pads"], outputs: ["padded"]),
            transpose("conv", "tc", [0, 2, 3, 1]),
            Node(opType: "Add", inputs: ["padded", "tc"], outputs: ["s"]),
            transpose("s", "y", [0, 3, 1, 2]),
        ], initializers: NamedTensors([("pads", Tensor(shape: [8], scalars: [Int64](arrayLiteral: 0, 0, 0, 0, 0, 0, 0, 2)))]))
        let before = try g.inferTypes()["y"]
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Pad", "Add", "Identity"])
        let pads = g.initializers[g.nodes[0].inputs[1]]
        #expect(pads?.scalars(as: Int64.self) == [0, 0, 0, 0, 0, 2, 0, 0])
        #expect(try g.inferTypes()["y"] == before)
    }

    @Test(arguments: [false, true])
    func aReductionKeepingItsAxesReducesTheSourceAlongThePermutedAxes(axesAsInput: Bool) throws {
        // ReduceMean over H and W of a channels-last value, read back channels first.
        let axes = [1, 2]
        let reduce = axesAsInput
            ? Node(opType: "ReduceMean", inputs: ["t", "axes"], outputs: ["m"])
            : Node(opType: "ReduceMean", inputs: ["t"], outputs: ["m"], attributes: [Attribute(name: "axes", value: .ints(axes))])
        var g = Graph(name: "g", inputs: [info("x", [1, 4, 3, 5])], outputs: [info("y", [1, 4, 1, 1])], nodes: [
            transpose("x", "t", [0, 2, 3, 1]),
            reduce,
            transpose("m", "y", [0, 3, 1, 2]),
        ], initializers: NamedTensors(axesAsInput ? [("axes", Tensor(shape: [2], scalars: axes.map { Int64($0) }))] : []))
        let before = try g.inferTypes()["y"]
        #expect(SinkTransposes.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["ReduceMean", "Identity"])
        let moved = axesAsInput ? g.initializers[g.nodes[0].inputs[1]]?.scalars(as: Int64.self).map(Int.init)
                                : (try g.nodes[0].ints("axes"))
        #expect(moved == [2, 3])
        #expect(try g.inferTypes()["y"] == before)
    }

    @Test func leavesAReductionThatDropsItsAxes() {
        var g = Graph(name: "g", inputs: [info("x", [1, 4, 3, 5])], outputs: [info("y", [1, 4])], nodes: [
            transpose("x", "t", [0, 2, 3, 1]),
            Node(opType: "ReduceMean", inputs: ["t"], outputs: ["y"],
                 attributes: [Attribute(name: "axes", value: .ints([1, 2])), Attribute(name: "keepdims", value: .int(0))]),
        ])
        #expect(!SinkTransposes.run(&g))
    }

    @Test func leavesABinaryOpWhoseTransposedOperandsAreReadElsewhere() {
        // Moving the Add would keep both transposes and add a third.
        var g = Graph(name: "g", inputs: [info("a", [2, 3, 4]), info("b", [2, 3, 4])],
                      outputs: [info("p", [4, 2, 3]), info("q", [4, 2, 3]), info("s", [4, 2, 3])], nodes: [
            transpose("a", "ta", [2, 0, 1]),
            transpose("b", "tb", [2, 0, 1]),
            Node(opType: "Relu", inputs: ["ta"], outputs: ["p"]),
            Node(opType: "Sigmoid", inputs: ["tb"], outputs: ["q"]),
            Node(opType: "Add", inputs: ["ta", "tb"], outputs: ["s"]),
        ])
        #expect(!SinkTransposes.run(&g))
        #expect(g.nodes.map(\.opType) == ["Transpose", "Transpose", "Relu", "Sigmoid", "Add"])
    }

    @Test func leavesATransposeWithNowhereToGo() {
        // Relu then MatMul: moving the transpose below the Relu would gain nothing.
        var g = Graph(name: "g", inputs: [info("x", [2, 3, 4])], outputs: [info("y", [2, 4, 5])], nodes: [
            transpose("x", "t", [0, 2, 1]),
            Node(opType: "Relu", inputs: ["t"], outputs: ["r"]),
            Node(opType: "MatMul", inputs: ["r", "w"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [3, 5]))]))
        #expect(!SinkTransposes.run(&g))
        #expect(g.nodes.map(\.opType) == ["Transpose", "Relu", "MatMul"])
    }
}
