import DLGraph
import DLTensor
import Testing

/// FuseConvPool on hand-built Conv → Relu → MaxPool chains: what it folds, what it leaves, and
/// that the fused graph types as the original.
@Suite struct FuseConvPoolTests {
    func info(_ name: String, _ shape: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(dtype: .float32, shape: shape))
    }

    func weights(_ pairs: [(String, [Int])]) -> NamedTensors {
        NamedTensors(pairs.map { ($0.0, Tensor(zeros: .float32, shape: $0.1)) })
    }

    let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
    let k2 = Attribute(name: "kernel_shape", value: .ints([2, 2]))
    let s2 = Attribute(name: "strides", value: .ints([2, 2]))

    func chain(pool: [Attribute], height: Int = 8, outputs extra: [ValueInfo] = [], reader: Node? = nil) -> Graph {
        var nodes = [
            Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(opType: "MaxPool", inputs: ["r"], outputs: ["y"], attributes: pool),
        ]
        if let reader { nodes.append(reader) }
        return Graph(name: "g", inputs: [info("x", [2, 3, height, 9])], outputs: [info("y", [2, 4, height / 2, 4])] + extra,
                     nodes: nodes, initializers: weights([("w", [4, 3, 3, 3]), ("b", [4])]))
    }

    @Test func foldsThePoolIntoTheFusedConv() throws {
        var g = chain(pool: [k2, s2], height: 7)
        let before = try g.inferTypes()["y"]
        #expect(FuseActivation.run(&g))
        #expect(FuseConvPool.run(&g))
        #expect(g.nodes.count == 1)
        let n = g.nodes[0]
        #expect(n.opType == "FusedConvPool" && n.domain == FusedOps.domain)
        #expect(n.inputs == ["x", "w", "b"] && n.outputs == ["y"])
        #expect((try? n.string("activation", default: "")) == "Relu")
        #expect((try? n.ints("pads")) == [1, 1, 1, 1])
        try g.verifyAndSort()
        #expect(try g.inferTypes()["y"] == before)
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [2, 4, 3, 4])
        #expect(!FuseConvPool.run(&g))
    }

    @Test func theStandardPassesFuseTheChain() throws {
        let (g, applied) = GraphOptimizer.optimize(chain(pool: [k2, s2]))
        #expect(g.nodes.map(\.opType) == ["FusedConvPool"])
        #expect(applied.contains(FuseConvPool.name))
    }

    @Test func leavesOtherPools() throws {
        let others: [[Attribute]] = [
            [k2],                                                              // stride 1
            [Attribute(name: "kernel_shape", value: .ints([3, 3])), s2],
            [k2, s2, Attribute(name: "pads", value: .ints([0, 0, 1, 1]))],
            [k2, s2, Attribute(name: "ceil_mode", value: .int(1))],
            [k2, s2, Attribute(name: "dilations", value: .ints([2, 2]))],
            [k2, s2, Attribute(name: "auto_pad", value: .string("SAME_UPPER"))],
        ]
        for attrs in others {
            var g = chain(pool: attrs)
            _ = FuseActivation.run(&g)
            #expect(!FuseConvPool.run(&g))
        }
        // The activation read by another node, or a graph output: the pool stays apart.
        var h = chain(pool: [k2, s2], outputs: [info("z", [2, 4, 8, 9])], reader: Node(opType: "Neg", inputs: ["r"], outputs: ["z"]))
        _ = FuseActivation.run(&h)
        #expect(!FuseConvPool.run(&h))
    }
}
