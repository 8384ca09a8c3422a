import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Graphs built in Swift with the older attribute forms (before the ops took them as inputs) run:
/// the executor puts them in the IR's form (`NormalForm`) before it plans, and the kernels read
/// only the inputs.
@Suite struct NormalFormTests {
    static func attr(_ name: String, _ v: AttributeValue) -> Attribute { Attribute(name: name, value: v) }

    /// x [1,2,3] → Clip-6(min 0, max 4) → Pad-2(pads, value 9) → Slice-1(starts/ends/axes) →
    /// Squeeze-11(axes) → TopK-1(k 2) → ReduceSum-11(axes).
    static func oldForms() -> Graph {
        let nodes = [
            Node(name: "clip", opType: "Clip", inputs: ["x"], outputs: ["c"], attributes: [attr("min", .float(0)), attr("max", .float(4))]),
            Node(name: "pad", opType: "Pad", inputs: ["c"], outputs: ["p"],
                 attributes: [attr("pads", .ints([0, 1, 0, 0, 0, 0])), attr("value", .float(9))]),
            Node(name: "slice", opType: "Slice", inputs: ["p"], outputs: ["s"],
                 attributes: [attr("starts", .ints([0, 1])), attr("ends", .ints([1, 9_223_372_036_854_775_807])), attr("axes", .ints([0, 2]))]),
            Node(name: "squeeze", opType: "Squeeze", inputs: ["s"], outputs: ["q"], attributes: [attr("axes", .ints([0]))]),
            Node(name: "topk", opType: "TopK", inputs: ["q"], outputs: ["k", "ki"], attributes: [attr("k", .int(2))]),
            Node(name: "sum", opType: "ReduceSum", inputs: ["k"], outputs: ["y"], attributes: [attr("axes", .ints([1])), attr("keepdims", .int(0))]),
        ]
        var g = Graph(name: "old", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 2, 3]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes)
        g.metadata.opsetImports = [("", 10)]
        return g
    }

    @Test func olderAttributeFormsRunAsTheirInputForms() throws {
        let x = Tensor(shape: [1, 2, 3], scalars: [Float(-1), 2, 7, 3, 0.5, 5])
        // Clip: [[0, 2, 4], [3, 0.5, 4]]; Pad one row of 9s on top: [[9,9,9],[0,2,4],[3,0.5,4]];
        // Slice columns 1...: [[9,9],[2,4],[0.5,4]]; TopK 2 of each row: [9,9],[4,2],[4,0.5].
        for options in [RuntimeOptions.default, RuntimeOptions(plans: false)] {
            let y = try #require(try Executor(graph: Self.oldForms(), options: options).run(["x": x])["y"])
            #expect(y.shape == [3])
            #expect(y.scalars(as: Float.self) == [18, 6, 4.5])
        }
    }

    @Test func theExecutorsGraphHoldsOnlyTheInputForms() throws {
        let exec = try Executor(graph: Self.oldForms())
        for n in exec.graph.nodes where n.opType != "Constant" {
            let moved = NormalForm.moves[n.opType]?.map(\.attribute) ?? []
            #expect(!n.attributes.contains { moved.contains($0.name) }, "\(n.displayName) kept an attribute form")
        }
        let squeeze = try #require(exec.graph.nodes.first { $0.name == "squeeze" })
        #expect(squeeze.inputs.count == 2)
    }
}

/// A fused node's Clip activation, run by the general kernels (here: a float64 convolution),
/// passes its bounds as Clip's inputs, the IR's form.
@Suite struct FusedClipFallbackTests {
    @Test func aFusedConvClipsOnTheGeneralPath() throws {
        let x = seededRandom([1, 2, 5, 5], seed: 8).converted(to: .float64)
        let w = seededRandom([3, 2, 3, 3], seed: 7).converted(to: .float64)
        let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
        let fused = Node(opType: "FusedConv", domain: FusedOps.domain, inputs: ["x", "w"], outputs: ["y"],
                         attributes: [pads, Attribute(name: "activation", value: .string("Clip")),
                                      Attribute(name: "activation_alpha", value: .float(-0.25)),
                                      Attribute(name: "activation_beta", value: .float(0.25))])
        let got = try #require(try NodeRunner.run(fused, inputs: [x, w], opset: 17).first).doubles()
        let conv = try #require(try NodeRunner.run(Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [pads]),
                                                   inputs: [x, w], opset: 17).first).doubles()
        #expect(conv.contains { $0 > 0.25 } && conv.contains { $0 < -0.25 }, "the bounds must matter for this test")
        #expect(got == conv.map { min(max($0, -0.25), 0.25) })
    }
}
