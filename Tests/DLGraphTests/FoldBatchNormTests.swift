import DLGraph
import DLTensor
import Testing

/// FoldBatchNorm on hand-built graphs: the folded weights and bias, and what it leaves alone.
@Suite struct FoldBatchNormTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func bnInits(_ c: Int) -> [(String, Tensor)] {
        [("s", Tensor(shape: [c], scalars: (0..<c).map { Float($0 + 1) })),
         ("b", Tensor(shape: [c], scalars: (0..<c).map { Float($0) * 0.5 })),
         ("m", Tensor(shape: [c], scalars: (0..<c).map { Float($0) - 1 })),
         ("v", Tensor(shape: [c], scalars: [Float](repeating: 3, count: c)))]
    }

    @Test func foldsIntoConvWeightsAndBias() throws {
        let w = Tensor(shape: [2, 1, 1, 2], scalars: [Float(1), 2, 3, 4])
        var g = Graph(name: "g", inputs: [info("x", [1, 1, 3, 3])], outputs: [info("y", [1, 2, 3, 2])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            Node(opType: "BatchNormalization", inputs: ["c", "s", "b", "m", "v"], outputs: ["y"],
                 attributes: [Attribute(name: "epsilon", value: .float(1))]),
        ], initializers: NamedTensors([("w", w)] + bnInits(2)))
        #expect(FoldBatchNorm.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Conv"])
        let conv = g.nodes[0]
        #expect(conv.outputs == ["y"] && conv.inputs.count == 3)
        // f = scale / sqrt(3 + 1) = [0.5, 1]; B' = (0 - mean) * f + b = [0.5, 0.5]
        #expect(g.initializers[conv.inputs[1]]?.scalars(as: Float.self) == [0.5, 1, 3, 4])
        #expect(g.initializers[conv.inputs[2]]?.scalars(as: Float.self) == [0.5, 0.5])
        // The originals nothing reads any more are gone.
        #expect(!g.initializers.contains("w") && !g.initializers.contains("v"))
    }

    @Test func foldsIntoGemmColumnsAndBeta() throws {
        // op(B) = Bᵀ with B [N=2, K=2]; column c of op(B) is row c of B.
        let w = Tensor(shape: [2, 2], scalars: [Float(1), 2, 3, 4])
        var g = Graph(name: "g", inputs: [info("x", [1, 2])], outputs: [info("y", [1, 2])], nodes: [
            Node(opType: "Gemm", inputs: ["x", "w", "cb"], outputs: ["c"],
                 attributes: [Attribute(name: "transB", value: .int(1)), Attribute(name: "beta", value: .float(2))]),
            Node(opType: "BatchNormalization", inputs: ["c", "s", "b", "m", "v"], outputs: ["y"],
                 attributes: [Attribute(name: "epsilon", value: .float(1))]),
        ], initializers: NamedTensors([("w", w), ("cb", Tensor(shape: [2], scalars: [Float(1), 1]))] + bnInits(2)))
        #expect(FoldBatchNorm.run(&g))
        let gemm = g.nodes[0]
        #expect(g.nodes.count == 1 && gemm.attributes.first { $0.name == "beta" } == nil)
        #expect(g.initializers[gemm.inputs[1]]?.scalars(as: Float.self) == [0.5, 1, 3, 4])
        // B' = (2 * 1 - mean) * f + b = [(2 + 1) * 0.5, (2 - 0) * 1 + 0.5]
        #expect(g.initializers[gemm.inputs[2]]?.scalars(as: Float.self) == [1.5, 2.5])
    }

    @Test func leavesBatchNormWithComputedParametersOrSharedInput() {
        var g = Graph(name: "g", inputs: [info("x", [1, 1, 3, 3]), info("s", [2])], outputs: [info("y", [1, 2, 3, 3])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            Node(opType: "BatchNormalization", inputs: ["c", "s", "b", "m", "v"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [2, 1, 1, 1]))] + bnInits(2).dropFirst()))
        #expect(!FoldBatchNorm.run(&g))

        var h = Graph(name: "h", inputs: [info("x", [1, 1, 3, 3])], outputs: [info("y", [1, 2, 3, 3]), info("c", [1, 2, 3, 3])], nodes: [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
            Node(opType: "BatchNormalization", inputs: ["c", "s", "b", "m", "v"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [2, 1, 1, 1]))] + bnInits(2)))
        #expect(!FoldBatchNorm.run(&h))
    }
}
