import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// A Transpose that only moves size-1 axes shares its input's storage (as Reshape does): the
/// values must still be the permuted ones, and an in-place op after it must not write into a
/// value that is still read.
@Suite struct TransposeViewTests {
    @Test(arguments: [false, true])
    func sizeOneAxisTransposeIsAViewThatInPlaceOpsRespect(transposeIsOutput: Bool) throws {
        // x [1, 5, 6] -> n = Neg(x) -> t = Transpose(n, 1 0 2) -> r = Relu(t) (may run in place)
        // -> y = Add(n, r), [1,5,6] + [5,1,6] broadcast; n is read after Relu. Without t as an
        // output, Relu would run in place if it could.
        let nodes = [
            Node(opType: "Neg", inputs: ["x"], outputs: ["n"]),
            Node(opType: "Transpose", inputs: ["n"], outputs: ["t"], attributes: [Attribute(name: "perm", value: .ints([1, 0, 2]))]),
            Node(opType: "Relu", inputs: ["t"], outputs: ["r"]),
            Node(opType: "Add", inputs: ["n", "r"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 5, 6]))],
                      outputs: [ValueInfo(name: "y", type: nil)] + (transposeIsOutput ? [ValueInfo(name: "t", type: nil)] : []),
                      nodes: nodes)
        g.metadata.opsetImports = [("", 17)]
        let x = seededRandom([1, 5, 6], seed: 11)
        let reference = try runNodeByNode(g, ["x": x])
        let e = try Executor(graph: g)
        for _ in 0..<3 {
            let out = try e.run(["x": x])
            let y = try #require(out["y"])
            #expect(y.shape == [5, 5, 6])
            if transposeIsOutput {
                let t = try #require(out["t"])
                #expect(t.shape == [5, 1, 6])
                #expect(t.scalars(as: Float.self) == x.scalars(as: Float.self).map { -$0 })
            }
            #expect(y.scalars(as: Float.self) == reference["y"]?.scalars(as: Float.self))
        }
        #expect(x.scalars(as: Float.self) == seededRandom([1, 5, 6], seed: 11).scalars(as: Float.self), "the input is untouched")
    }
}
