import DLGraph
import DLTensor
import Testing

/// Common subexpression elimination: repeats merge, anything that differs (attributes, inputs,
/// randomness, graph outputs) stays.
@Suite struct CommonSubexpressionTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    @Test func mergesRepeatedNodesAndEqualConstants() throws {
        let axes = Tensor(shape: [1], scalars: [Int64(0)])
        var g = Graph(name: "g", inputs: [info("x", [4, 3])], outputs: [info("y", [4, 3]), info("z", [3])], nodes: [
            Node(opType: "Shape", inputs: ["x"], outputs: ["s1"]),
            Node(opType: "Shape", inputs: ["x"], outputs: ["s2"]),
            Node(opType: "Constant", inputs: [], outputs: ["k1"], attributes: [Attribute(name: "value", value: .tensor(axes))]),
            Node(opType: "Constant", inputs: [], outputs: ["k2"], attributes: [Attribute(name: "value", value: .tensor(axes))]),
            Node(opType: "Gather", inputs: ["s1", "k1"], outputs: ["g1"]),
            Node(opType: "Gather", inputs: ["s2", "k2"], outputs: ["g2"]),
            Node(opType: "Relu", inputs: ["x"], outputs: ["r1"]),
            Node(opType: "Relu", inputs: ["x"], outputs: ["r2"]),
            Node(opType: "Add", inputs: ["r1", "r2"], outputs: ["y"]),
            Node(opType: "ReduceSum", inputs: ["x", "k2"], outputs: ["z"], attributes: [Attribute(name: "keepdims", value: .int(0))]),
        ], initializers: NamedTensors([("w1", axes), ("w2", axes)]))
        #expect(EliminateCommonSubexpressions.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Shape", "Constant", "Gather", "Relu", "Add", "ReduceSum"])
        #expect(g.nodes[4].inputs == ["r1", "r1"])
        #expect(g.nodes[5].inputs == ["x", "k1"])
        // The equal initializers merged too.
        #expect(g.initializers.contains("w1") && !g.initializers.contains("w2"))
        #expect(!EliminateCommonSubexpressions.run(&g))
    }

    @Test func keepsDifferentAttributesRandomOpsAndGraphOutputs() {
        var g = Graph(name: "g", inputs: [info("x", [4, 3])], outputs: [info("a", [4, 3]), info("b", [4, 3]), info("y", [4, 3]), info("r", [2])], nodes: [
            Node(opType: "LeakyRelu", inputs: ["x"], outputs: ["l1"], attributes: [Attribute(name: "alpha", value: .float(0.1))]),
            Node(opType: "LeakyRelu", inputs: ["x"], outputs: ["l2"], attributes: [Attribute(name: "alpha", value: .float(0.2))]),
            Node(opType: "Add", inputs: ["l1", "l2"], outputs: ["y"]),
            // Same op and input, but both are graph outputs: the names must stay.
            Node(opType: "Relu", inputs: ["x"], outputs: ["a"]),
            Node(opType: "Relu", inputs: ["x"], outputs: ["b"]),
            Node(opType: "RandomUniform", inputs: [], outputs: ["r1"], attributes: [Attribute(name: "shape", value: .ints([2]))]),
            Node(opType: "RandomUniform", inputs: [], outputs: ["r2"], attributes: [Attribute(name: "shape", value: .ints([2]))]),
            Node(opType: "Add", inputs: ["r1", "r2"], outputs: ["r"]),
        ])
        #expect(!EliminateCommonSubexpressions.run(&g))
        #expect(g.nodes.count == 8)
    }
}
