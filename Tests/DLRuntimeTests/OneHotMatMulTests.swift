import DLGraph
@testable import DLRuntime
import DLTensor
import Testing

/// `MatMul(Cast(Equal(X, range)), W)` (a one-hot encoding times a weight matrix, as tf2onnx and
/// jax2tf export `one_hot` + dense) folds into `ai.dlkit.OneHotMatMul`, a row copy per value.
struct OneHotMatMulTests {
    /// X [2, 5, 1] against the range [1, 1, 4], then W [4, 3].
    func graph(_ xType: DType) -> Graph {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: xType, shape: [2, 5, 1]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "Equal", inputs: ["x", "range"], outputs: ["hot"]),
                              Node(opType: "Cast", inputs: ["hot"], outputs: ["f"], attributes: [Attribute(name: "to", value: .int(1))]),
                              Node(opType: "MatMul", inputs: ["f", "w"], outputs: ["y"])],
                      initializers: NamedTensors([("range", Tensor(shape: [1, 1, 4], scalars: [0, 1, 2, 3].map { Float($0) }).converted(to: xType)),
                                                  ("w", seededRandom([4, 3], seed: 3))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test(arguments: [DType.int32, .int64, .float32])
    func foldsAndGivesTheOneHotProduct(_ xType: DType) throws {
        let g = graph(xType)
        let optimised = GraphOptimizer.optimize(g, passes: GraphOptimizer.runtime).0
        #expect(optimised.nodes.map(\.opType) == ["OneHotMatMul"])
        // In range, negative, past the end; for floats also a fraction and NaN (rows of zeros).
        var values: [Double] = [0, 3, 1, -1, 4, 2, 2, 0, 3, 1]
        if xType == .float32 { values[4] = 2.5; values[8] = .nan }
        let x = Tensor.fromDoubles(values, dtype: xType, shape: [2, 5, 1])
        let want = try #require(try runNodeByNode(g, ["x": x])["y"])
        let got = try #require(try Executor(graph: g).run(["x": x])["y"])
        #expect(got.shape == [2, 5, 3])
        #expect(got.scalars(as: Float.self) == want.scalars(as: Float.self))
        let w = seededRandom([4, 3], seed: 3).scalars(as: Float.self)
        #expect(Array(got.scalars(as: Float.self)[3..<6]) == Array(w[9..<12]), "row 1 is W's row 3")
        #expect(Array(got.scalars(as: Float.self)[9..<12]) == [0, 0, 0], "row 3 (-1) names no row")
    }

    @Test func otherShapesRunTheThreeOps() throws {
        // X's last axis is the one-hot width itself: no row copy, the general ops.
        let node = Node(opType: "OneHotMatMul", domain: FusedOps.domain, inputs: ["x", "r", "w"], outputs: ["y"])
        let x = Tensor(shape: [2, 4], scalars: [Int64(0), 5, 2, 3, 0, 1, 7, 3])
        let r = Tensor(shape: [4], scalars: [Int64(0), 1, 2, 3])
        let w = seededRandom([4, 2], seed: 5)
        let got = try #require(try NodeRunner.run(node, inputs: [x, r, w], opset: 17).first)
        let hot = try #require(try NodeRunner.run(Node(opType: "Equal", inputs: ["x", "r"], outputs: ["h"]), inputs: [x, r], opset: 17).first)
        let f = try #require(try NodeRunner.run(Node(opType: "Cast", inputs: ["h"], outputs: ["f"], attributes: [Attribute(name: "to", value: .int(1))]),
                                                inputs: [hot], opset: 17).first)
        let want = try #require(try NodeRunner.run(Node(opType: "MatMul", inputs: ["f", "w"], outputs: ["y"]), inputs: [f, w], opset: 17).first)
        #expect(got.shape == [2, 2] && got.scalars(as: Float.self) == want.scalars(as: Float.self))
    }
}
