import DLGraph
import DLTensor
import Testing

/// The graph passes on small hand-built graphs: what each rewrites, what it must leave alone,
/// and that the optimiser's result still verifies.
@Suite struct PassTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func weights(_ pairs: [(String, [Int])]) -> NamedTensors {
        NamedTensors(pairs.map { ($0.0, Tensor(zeros: .float32, shape: $0.1)) })
    }

    @Test func eliminateIdentity_rewiresReadersAndKeepsGraphOutputs() throws {
        var g = Graph(name: "g", inputs: [info("x", [2])], outputs: [info("out", [2])], nodes: [
            Node(opType: "Identity", inputs: ["x"], outputs: ["a"]),
            Node(opType: "Dropout", inputs: ["a"], outputs: ["b"]),
            Node(opType: "Relu", inputs: ["b"], outputs: ["c"]),
            Node(opType: "Identity", inputs: ["c"], outputs: ["out"]),
        ])
        #expect(EliminateIdentity.run(&g))
        #expect(g.nodes.map(\.opType) == ["Relu", "Identity"])
        #expect(g.nodes[0].inputs == ["x"])
        #expect(g.nodes[1].outputs == ["out"])
        try g.verifyAndSort()
        #expect(!EliminateIdentity.run(&g))
    }

    @Test func eliminateIdentity_keepsDropoutWithMaskOrTrainingFlag() {
        var g = Graph(name: "g", inputs: [info("x", [2]), ValueInfo(name: "t", type: TensorType(dtype: .bool, shape: []))],
                      outputs: [info("y", [2]), info("z", [2])], nodes: [
            Node(opType: "Dropout", inputs: ["x"], outputs: ["a", "mask"]),
            Node(opType: "Dropout", inputs: ["x", "", "t"], outputs: ["b"]),
            Node(opType: "Add", inputs: ["a", "b"], outputs: ["y"]),
            Node(opType: "Not", inputs: ["mask"], outputs: ["z"]),
        ])
        #expect(!EliminateIdentity.run(&g))
        #expect(g.nodes.count == 4)
    }

    @Test func fuseActivation_foldsReluIntoConvAndGemm() throws {
        var g = Graph(name: "g", inputs: [info("x", [1, 3, 8, 8])], outputs: [info("y", [1, 4])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                 attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
            Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(opType: "Flatten", inputs: ["r"], outputs: ["f"]),
            Node(opType: "Gemm", inputs: ["f", "fw"], outputs: ["g"], attributes: [Attribute(name: "transB", value: .int(1))]),
            Node(opType: "LeakyRelu", inputs: ["g"], outputs: ["y"], attributes: [Attribute(name: "alpha", value: .float(0.2))]),
        ], initializers: weights([("w", [2, 3, 3, 3]), ("b", [2]), ("fw", [4, 128])]))
        let before = try g.inferTypes()["f"]
        #expect(FuseActivation.run(&g))
        #expect(g.nodes.map(\.opType) == ["FusedConv", "Flatten", "FusedGemm"])
        #expect(g.nodes.allSatisfy { $0.opType == "Flatten" || $0.domain == FusedOps.domain })
        #expect(g.nodes[0].outputs == ["r"])
        #expect((try? g.nodes[0].string("activation", default: "")) == "Relu")
        #expect((try? g.nodes[2].float("activation_alpha", default: 0)) == 0.2)
        try g.verifyAndSort()
        // Types are inferred through the fused ops as through the originals.
        let after = try g.inferTypes()
        #expect(after["f"] == before)
        #expect(after["r"]?.dims?.concrete == [1, 2, 8, 8])
        #expect(after["y"]?.dims?.concrete == [1, 4])
    }

    @Test func fuseActivation_leavesConvWithSeveralReaders() {
        var g = Graph(name: "g", inputs: [info("x", [1, 3, 4, 4])], outputs: [info("y", [1, 2, 2, 2]), info("c", [1, 2, 2, 2])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            Node(opType: "Relu", inputs: ["c"], outputs: ["y"]),
        ], initializers: weights([("w", [2, 3, 3, 3])]))
        #expect(!FuseActivation.run(&g))
        #expect(g.nodes.map(\.opType) == ["Conv", "Relu"])
    }

    @Test func optimizer_runsToAFixedPointAndVerifies() throws {
        let g = Graph(name: "g", inputs: [info("x", [2, 6])], outputs: [info("y", [2, 3])], nodes: [
            Node(opType: "Identity", inputs: ["x"], outputs: ["a"]),
            Node(opType: "Gemm", inputs: ["a", "w"], outputs: ["b"]),
            Node(opType: "Dropout", inputs: ["b"], outputs: ["c"]),
            Node(opType: "Relu", inputs: ["c"], outputs: ["y"]),
        ], initializers: weights([("w", [6, 3])]))
        let (out, applied) = GraphOptimizer.optimize(g)
        // Dropout must go before the Relu can reach the Gemm: two rounds.
        #expect(applied == ["eliminate-identity", "fuse-activation"])
        #expect(out.nodes.map(\.opType) == ["FusedGemm"])
        #expect(out.nodes[0].inputs == ["x", "w"])
        #expect(out.nodes[0].outputs == ["y"])
        var check = out
        try check.verifyAndSort()
    }
}
