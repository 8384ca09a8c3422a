import DLGraph
import DLTensor
import Testing

/// FuseMatMulAdd: a linear layer as torch exports it (MatMul by a constant, Add of a constant
/// bias) becomes one FusedMatMul, for rank-3 activations too; what it must leave alone.
@Suite struct FuseMatMulAddTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func linear(bias: [Int] = [5], biasFirst: Bool = false, extraReader: Bool = false, fedWeight: Bool = false) -> Graph {
        var nodes = [
            Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(opType: "Add", inputs: biasFirst ? ["b", "m"] : ["m", "b"], outputs: ["a"]),
            Node(opType: "Relu", inputs: ["a"], outputs: ["y"]),
        ]
        var outputs = [info("y", [2, 3, 5])]
        if extraReader {
            nodes.append(Node(opType: "Neg", inputs: ["m"], outputs: ["z"]))
            outputs.append(info("z", [2, 3, 5]))
        }
        var inputs = [info("x", [2, 3, 4])]
        if fedWeight { inputs.append(info("w", [4, 5])) }
        return Graph(name: "g", inputs: inputs, outputs: outputs, nodes: nodes,
                     initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [4, 5])),
                                                 ("b", Tensor(zeros: .float32, shape: bias))]))
    }

    @Test(arguments: [false, true])
    func foldsBiasAndThenReluIntoOneNode(biasFirst: Bool) throws {
        var g = linear(biasFirst: biasFirst)
        #expect(FuseMatMulAdd.run(&g))
        #expect(g.nodes.map(\.opType) == ["FusedMatMul", "Relu"])
        #expect(g.nodes[0].domain == FusedOps.domain)
        #expect(g.nodes[0].inputs == ["x", "w", "b"])
        #expect(g.nodes[0].outputs == ["a"])
        try g.verifyAndSort()
        #expect(try g.inferTypes()["a"]?.dims?.concrete == [2, 3, 5])
        #expect(!FuseMatMulAdd.run(&g))

        let (opt, applied) = GraphOptimizer.optimize(linear(biasFirst: biasFirst))
        #expect(applied == ["fuse-matmul-add", "fuse-activation"])
        #expect(opt.nodes.count == 1)
        #expect(opt.nodes[0].opType == "FusedMatMul")
        #expect((try? opt.nodes[0].string("activation", default: "")) == "Relu")
        #expect(opt.nodes[0].outputs == ["y"])
        #expect(try opt.inferTypes()["y"]?.dims?.concrete == [2, 3, 5])
    }

    @Test func leavesNonBiasAddsAndSharedOrFedOperands() {
        // A bias that is not [N] broadcasts differently; a MatMul read twice must stay; a weight
        // a caller feeds is not a constant.
        for var g in [linear(bias: [3, 5]), linear(bias: [1]), linear(extraReader: true), linear(fedWeight: true)] {
            #expect(!FuseMatMulAdd.run(&g))
            #expect(g.nodes.contains { $0.opType == "MatMul" })
        }
    }

    /// OpenVINO's form: a bias with leading ones (`[1, 1, N]`) folds as it is, and the fused node
    /// broadcasts it as the Add did: one dim more than the product adds a leading one to the result.
    @Test(arguments: [([1, 1, 5], [2, 3, 5]), ([1, 1, 1, 5], [1, 2, 3, 5])] as [([Int], [Int])])
    func aBiasWithLeadingOnesFoldsAndBroadcastsAsTheAdd(_ bias: [Int], _ result: [Int]) throws {
        var g = linear(bias: bias, biasFirst: true)
        #expect(FuseMatMulAdd.run(&g))
        #expect(g.nodes.map(\.opType) == ["FusedMatMul", "Relu"])
        #expect(g.nodes[0].inputs == ["x", "w", "b"])
        try g.verifyAndSort()
        #expect(try g.inferTypes()["y"]?.dims?.concrete == result)
    }

    /// OpenVINO IR's fully connected layer, a Gemm without C ("WithoutBiases") and an Add of a
    /// `[1, N]` bias, becomes a Gemm with C (beta 1 whatever it said), and the Relu after it fuses.
    @Test(arguments: [[1, 3], [3]] as [[Int]])
    func aGemmWithoutItsBiasTakesTheAdd(_ biasShape: [Int]) throws {
        func gemm() -> Graph {
            Graph(name: "g", inputs: [info("x", [2, 4])], outputs: [info("y", [2, 3])], nodes: [
                Node(opType: "Gemm", inputs: ["x", "w"], outputs: ["m"],
                     attributes: [Attribute(name: "transB", value: .int(1)), Attribute(name: "beta", value: .float(0.5))]),
                Node(opType: "Add", inputs: ["m", "b"], outputs: ["a"]),
                Node(opType: "Relu", inputs: ["a"], outputs: ["y"]),
            ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [3, 4])),
                                           ("b", Tensor(shape: biasShape, scalars: [1, 2, 3] as [Float]))]))
        }
        var g = gemm()
        #expect(FuseMatMulAdd.run(&g))
        #expect(g.nodes.map(\.opType) == ["Gemm", "Relu"])
        #expect(g.nodes[0].inputs == ["x", "w", "b"])
        #expect(try g.nodes[0].float("beta", default: 0) == 1 && g.nodes[0].int("transB", default: 0) == 1)
        let (opt, _) = GraphOptimizer.optimize(gemm())
        #expect(opt.nodes.map(\.opType) == ["FusedGemm"])
        // A Gemm that has its C already keeps the Add, and so does one whose bias would add a dim.
        var withC = gemm()
        withC.nodes[0].inputs.append("b")
        #expect(!FuseMatMulAdd.run(&withC))
        var wider = gemm()
        wider.initializers["b"] = Tensor(shape: [1, 1, 3], scalars: [1, 2, 3] as [Float])
        #expect(!FuseMatMulAdd.run(&wider))
    }

    @Test func inferenceRejectsAMismatchedBias() {
        let g = Graph(name: "g", inputs: [info("x", [2, 4])], outputs: [info("y", [2, 5])], nodes: [
            Node(opType: "FusedMatMul", domain: FusedOps.domain, inputs: ["x", "w", "b"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [4, 5])),
                                       ("b", Tensor(zeros: .float32, shape: [6]))]))
        do {
            _ = try g.inferTypes()
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("bias"))
        }
    }
}
