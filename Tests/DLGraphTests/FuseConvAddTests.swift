import DLGraph
import DLTensor
import Testing

/// FuseConvAdd on hand-built residual blocks: what it folds, what it leaves, and that the fused
/// graph types as the original.
@Suite struct FuseConvAddTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func weights(_ pairs: [(String, [Int])]) -> NamedTensors {
        NamedTensors(pairs.map { ($0.0, Tensor(zeros: .float32, shape: $0.1)) })
    }

    let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))

    @Test func foldsAddAndReluIntoTheConv() throws {
        var g = Graph(name: "g", inputs: [info("x", [1, 4, 6, 6])], outputs: [info("y", [1, 4, 6, 6])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Add", inputs: ["x", "c"], outputs: ["s"]),
            Node(opType: "Relu", inputs: ["s"], outputs: ["y"]),
        ], initializers: weights([("w", [4, 4, 3, 3]), ("b", [4])]))
        let before = try g.inferTypes()["y"]
        #expect(FuseConvAdd.run(&g))
        #expect(g.nodes.count == 1)
        let n = g.nodes[0]
        #expect(n.opType == "FusedConvAdd" && n.domain == FusedOps.domain)
        #expect(n.inputs == ["x", "w", "b", "x"])
        #expect(n.outputs == ["y"])
        #expect((try? n.string("activation", default: "")) == "Relu")
        #expect((try? n.ints("pads")) == [1, 1, 1, 1])
        try g.verifyAndSort()
        #expect(try g.inferTypes()["y"] == before)
        #expect(!FuseConvAdd.run(&g))
    }

    @Test func twoConvOperandsFuseTheFirstAndKeepTheOtherAsSkip() throws {
        var g = Graph(name: "g", inputs: [info("x", [1, 2, 4, 4])], outputs: [info("y", [1, 3, 4, 4])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w1"], outputs: ["a"], attributes: [pads]),
            Node(opType: "Conv", inputs: ["x", "w2"], outputs: ["s"]),
            Node(opType: "Add", inputs: ["a", "s"], outputs: ["y"]),
        ], initializers: weights([("w1", [3, 2, 3, 3]), ("w2", [3, 2, 1, 1])]))
        #expect(FuseConvAdd.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Conv", "FusedConvAdd"])
        #expect(g.nodes[1].inputs == ["x", "w1", "", "s"])
        #expect(g.nodes[1].attributes.first { $0.name == "activation" } == nil)
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [1, 3, 4, 4])
    }

    @Test func leavesConvWithOtherReadersAndKeepsReluWithOtherReaders() throws {
        var g = Graph(name: "g", inputs: [info("x", [1, 2, 4, 4])], outputs: [info("y", [1, 2, 4, 4]), info("z", [1, 2, 4, 4])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Add", inputs: ["c", "x"], outputs: ["y"]),
            Node(opType: "Neg", inputs: ["c"], outputs: ["z"]),
        ], initializers: weights([("w", [2, 2, 3, 3])]))
        #expect(!FuseConvAdd.run(&g))

        var h = Graph(name: "h", inputs: [info("x", [1, 2, 4, 4])], outputs: [info("y", [1, 2, 4, 4]), info("s", [1, 2, 4, 4])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Add", inputs: ["c", "x"], outputs: ["s"]),
            Node(opType: "Relu", inputs: ["s"], outputs: ["y"]),
        ], initializers: weights([("w", [2, 2, 3, 3])]))
        #expect(FuseConvAdd.run(&h))
        try h.verifyAndSort()
        // The Add's result is a graph output: the Relu stays a node of its own.
        #expect(h.nodes.map(\.opType) == ["FusedConvAdd", "Relu"])
        #expect(h.nodes[0].outputs == ["s"])
    }

    @Test func optimizerFusesAResidualBlock() throws {
        let g = Graph(name: "g", inputs: [info("x", [1, 2, 4, 4])], outputs: [info("y", [1, 2, 4, 4])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w1"], outputs: ["a"], attributes: [pads]),
            Node(opType: "Relu", inputs: ["a"], outputs: ["r"]),
            Node(opType: "Conv", inputs: ["r", "w2"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Add", inputs: ["c", "x"], outputs: ["s"]),
            Node(opType: "Relu", inputs: ["s"], outputs: ["y"]),
        ], initializers: weights([("w1", [2, 2, 3, 3]), ("w2", [2, 2, 3, 3])]))
        let (opt, applied) = GraphOptimizer.optimize(g)
        #expect(opt.nodes.map(\.opType) == ["FusedConv", "FusedConvAdd"])
        #expect(applied.contains(FuseConvAdd.name))
    }
}
