import DLGraph
import DLTensor
import Testing

/// FuseAttention: MatMul(Q, Kᵀ) -> [Mul/Div scale] -> [Add mask] -> Softmax -> MatMul(V) becomes
/// one FusedAttention; chains it must leave alone stay as they are.
@Suite struct FuseAttentionTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    /// q [2,4,8], kt [2,8,6], v [2,6,3]; scale by "c" (Mul or Div or none), optional mask [4,6].
    func attention(scaleOp: String = "Div", mask: Bool = true, softmaxAxis: Int = -1, extraReader: Bool = false) -> Graph {
        var nodes = [Node(opType: "MatMul", inputs: ["q", "kt"], outputs: ["s"])]
        var cur = "s"
        if !scaleOp.isEmpty {
            nodes.append(Node(opType: scaleOp, inputs: [cur, "c"], outputs: ["ss"]))
            cur = "ss"
        }
        if mask {
            nodes.append(Node(opType: "Add", inputs: [cur, "mask"], outputs: ["sm"]))
            cur = "sm"
        }
        nodes.append(Node(opType: "Softmax", inputs: [cur], outputs: ["p"], attributes: [Attribute(name: "axis", value: .int(softmaxAxis))]))
        nodes.append(Node(opType: "MatMul", inputs: ["p", "v"], outputs: ["y"]))
        var outputs = [info("y", [2, 4, 3])]
        if extraReader {
            nodes.append(Node(opType: "Neg", inputs: ["p"], outputs: ["z"]))
            outputs.append(info("z", [2, 4, 6]))
        }
        return Graph(name: "g", inputs: [info("q", [2, 4, 8]), info("kt", [2, 8, 6]), info("v", [2, 6, 3])],
                     outputs: outputs, nodes: nodes,
                     initializers: NamedTensors([("c", Tensor(shape: [], scalars: [Float(2.5)])),
                                                 ("mask", Tensor(zeros: .float32, shape: [4, 6]))]))
    }

    @Test(arguments: [("Div", true), ("Mul", true), ("", true), ("Div", false), ("", false)])
    func foldsTheChainIntoOneNode(_ scaleOp: String, _ mask: Bool) throws {
        var g = attention(scaleOp: scaleOp, mask: mask)
        #expect(FuseAttention.run(&g))
        #expect(g.nodes.map(\.opType) == ["FusedAttention"])
        #expect(g.nodes[0].domain == FusedOps.domain)
        var expected = ["q", "kt", "v", scaleOp.isEmpty ? "" : "c", mask ? "mask" : ""]
        while expected.last == "" { expected.removeLast() }
        #expect(g.nodes[0].inputs == expected)
        #expect((try? g.nodes[0].string("scale_op", default: "?")) == scaleOp)
        try g.verifyAndSort()
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [2, 4, 3])
        #expect(!FuseAttention.run(&g))
        let (opt, applied) = GraphOptimizer.optimize(attention(scaleOp: scaleOp, mask: mask))
        #expect(applied.contains("fuse-attention"))
        #expect(opt.nodes.map(\.opType) == ["FusedAttention"])
    }

    @Test func leavesOtherChainsAlone() {
        // The probabilities are read twice (a graph output too): fusing would lose them.
        var g = attention(extraReader: true)
        #expect(!FuseAttention.run(&g))
        // Softmax over another axis is not attention.
        g = attention(softmaxAxis: 1)
        #expect(!FuseAttention.run(&g))
        // No MatMul before the Softmax.
        g = Graph(name: "g", inputs: [info("s", [2, 4, 6]), info("v", [2, 6, 3])], outputs: [info("y", [2, 4, 3])],
                  nodes: [Node(opType: "Softmax", inputs: ["s"], outputs: ["p"]),
                          Node(opType: "MatMul", inputs: ["p", "v"], outputs: ["y"])])
        #expect(!FuseAttention.run(&g))
        // A scale that is not one number.
        g = attention(scaleOp: "Mul")
        g.initializers["c"] = Tensor(zeros: .float32, shape: [6])
        #expect(!FuseAttention.run(&g))
    }
}
