import DLGraph
import DLTensor
import Testing

/// What ConstantFolding does itself (Constant nodes, symbolic shapes) and what it asks its
/// evaluator; the folding through the kernels is `KernelFoldingTests` in DLRuntimeTests.
@Suite struct ConstantFoldingTests {
    func i64(_ v: [Int64], scalar: Bool = false) -> Tensor { Tensor(shape: scalar ? [] : [v.count], scalars: v) }

    /// x [N, 8, 6] -> Shape -> Gather(1), Gather(2) -> Mul: the gathers pick fixed dims.
    func shapeProduct() -> Graph {
        let x = ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(6)]))
        return Graph(name: "g", inputs: [x], outputs: [ValueInfo(name: "y", type: nil)], nodes: [
            Node(opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(opType: "Constant", inputs: [], outputs: ["c1"], attributes: [Attribute(name: "value", value: .tensor(i64([1], scalar: true)))]),
            Node(opType: "Gather", inputs: ["s", "c1"], outputs: ["h"]),
            Node(opType: "Gather", inputs: ["s", "two"], outputs: ["w"]),
            Node(opType: "Mul", inputs: ["h", "w"], outputs: ["hw"]),
            Node(opType: "RandomUniform", inputs: [], outputs: ["r"], attributes: [Attribute(name: "shape", value: .ints([2]))]),
            Node(opType: "Add", inputs: ["hw", "big"], outputs: ["big2"]),
            Node(opType: "Reshape", inputs: ["x", "big2"], outputs: ["y"]),
        ], initializers: NamedTensors([("two", i64([2], scalar: true)),
                                       ("big", Tensor(shape: [ConstantFolding.maxElements + 1], scalars: [Int64](repeating: 0, count: ConstantFolding.maxElements + 1)))]))
    }

    @Test func withoutAnEvaluatorConstantsAndShapesFold() throws {
        var g = shapeProduct()
        #expect(ConstantFolding.run(&g))
        try g.verifyAndSort()
        // The fixed dims are known from the type alone; their product needs an evaluator.
        #expect(g.initializers["h"]?.scalars(as: Int64.self) == [8])
        #expect(g.initializers["w"]?.scalars(as: Int64.self) == [6])
        #expect(g.nodes.map(\.opType) == ["Mul", "RandomUniform", "Add", "Reshape"])
    }

    @Test func theEvaluatorIsAskedOnlyForSmallAllConstantShapeOps() throws {
        var g = shapeProduct()
        var asked: [String] = []
        #expect(ConstantFolding.run(&g) { node, inputs in
            asked.append(node.opType)
            guard node.opType == "Mul", let a = inputs[0], let b = inputs[1] else { return nil }
            return [Tensor(shape: [], scalars: [a.scalars(as: Int64.self)[0] * b.scalars(as: Int64.self)[0]])]
        })
        // Shape and the gathers read a value known only by its type (folded symbolically);
        // RandomUniform is never evaluated, and the Add reads an initializer over `maxElements`.
        #expect(asked == ["Mul"])
        #expect(g.initializers["hw"]?.scalars(as: Int64.self) == [48])
        #expect(g.nodes.map(\.opType) == ["RandomUniform", "Add", "Reshape"])
    }

    /// A Transpose of a weight that nothing else reads (OpenVINO IR's MatMul with transpose_b)
    /// folds whatever its size, replacing the weight; one whose weight has another reader stays,
    /// so no weight is ever held twice.
    @Test func aTransposedWeightWithOneReaderFoldsAtAnySize() throws {
        let n = ConstantFolding.maxElements + 4
        let x = ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2, n]))
        var g = Graph(name: "g", inputs: [x], outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "z", type: nil)], nodes: [
            Node(opType: "Transpose", inputs: ["w"], outputs: ["wt"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "MatMul", inputs: ["x", "wt"], outputs: ["y"]),
            Node(opType: "Transpose", inputs: ["shared"], outputs: ["st"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "MatMul", inputs: ["x", "st"], outputs: ["z0"]),
            Node(opType: "Add", inputs: ["z0", "shared"], outputs: ["z"]),
        ], initializers: NamedTensors([("w", Tensor(zeros: .float32, shape: [1, n])), ("shared", Tensor(zeros: .float32, shape: [1, n]))]))
        var asked: [String] = []
        #expect(ConstantFolding.run(&g) { node, inputs in
            asked.append(node.opType)
            guard node.opType == "Transpose", let w = inputs[0] else { return nil }
            return [Tensor(zeros: .float32, shape: w.shape.reversed())]
        })
        #expect(asked == ["Transpose"])
        #expect(g.initializers["wt"]?.shape == [n, 1] && g.initializers["w"] == nil)
        #expect(g.nodes.map(\.opType) == ["MatMul", "Transpose", "MatMul", "Add"])
    }
}
