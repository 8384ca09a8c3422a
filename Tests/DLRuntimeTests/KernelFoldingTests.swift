import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Constant folding through the kernels on hand-built graphs: the torch Shape chains around
/// Reshape, what depends on a symbolic dim (must stay), and the shape-sized ops.
@Suite struct KernelFoldingTests {
    func i64(_ v: [Int64], scalar: Bool = false) -> Tensor { Tensor(shape: scalar ? [] : [v.count], scalars: v) }

    func constant(_ out: String, _ t: Tensor) -> Node {
        Node(opType: "Constant", inputs: [], outputs: [out], attributes: [Attribute(name: "value", value: .tensor(t))])
    }

    /// x [N, 8, 6] -> Reshape to [N, Shape(x)[1] * Shape(x)[2]] as torch exports `x.view(x.size(0), -1)`
    /// written with explicit sizes: the product of the fixed dims folds, the N entry cannot.
    func torchFlatten() -> Graph {
        let x = ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(6)]))
        return Graph(name: "g", inputs: [x], outputs: [ValueInfo(name: "y", type: nil)], nodes: [
            Node(opType: "Shape", inputs: ["x"], outputs: ["s"]),
            constant("c0", i64([0], scalar: true)),
            constant("c1", i64([1], scalar: true)),
            constant("c2", i64([2], scalar: true)),
            constant("ax", i64([0])),
            Node(opType: "Gather", inputs: ["s", "c0"], outputs: ["n"]),
            Node(opType: "Gather", inputs: ["s", "c1"], outputs: ["h"]),
            Node(opType: "Gather", inputs: ["s", "c2"], outputs: ["w"]),
            Node(opType: "Mul", inputs: ["h", "w"], outputs: ["hw"]),
            Node(opType: "Unsqueeze", inputs: ["n", "ax"], outputs: ["n1"]),
            Node(opType: "Unsqueeze", inputs: ["hw", "ax"], outputs: ["hw1"]),
            Node(opType: "Concat", inputs: ["n1", "hw1"], outputs: ["shape"], attributes: [Attribute(name: "axis", value: .int(0))]),
            Node(opType: "Reshape", inputs: ["x", "shape"], outputs: ["y"]),
        ])
    }

    @Test func foldsWhatFixedDimsDecideAndKeepsTheSymbolicPart() throws {
        var g = torchFlatten()
        #expect(KernelFolding.run(&g))
        try g.verifyAndSort()
        // The fixed part (8 * 6 = 48, unsqueezed) is an initializer; the batch entry still comes
        // from Shape -> Gather -> Unsqueeze at run time.
        #expect(g.initializers["hw1"]?.scalars(as: Int64.self) == [48])
        #expect(g.nodes.map(\.opType) == ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape"])
        #expect(g.nodes.allSatisfy { $0.opType != "Constant" && $0.opType != "Mul" })
        // Nothing more to do.
        #expect(!KernelFolding.run(&g))
    }

    @Test func foldsTheWholeChainWhenTheShapeIsConcrete() throws {
        var g = torchFlatten()
        g.inputs[0].type = TensorType(dtype: .float32, shape: [3, 8, 6])
        #expect(KernelFolding.run(&g))
        try g.verifyAndSort()
        #expect(g.nodes.map(\.opType) == ["Reshape"])
        #expect(g.initializers["shape"]?.scalars(as: Int64.self) == [3, 48])
        #expect(try g.inferTypes()["y"]?.dims?.concrete == [3, 48])
    }

    @Test func leavesGraphOutputsFedInitializersAndRandomOps() throws {
        // A folded value that is a graph output keeps its node; an initializer also listed as an
        // input can be replaced by a caller, so nothing reading it folds.
        var g = Graph(name: "g", inputs: [ValueInfo(name: "k", type: TensorType(dtype: .int64, shape: [1]))],
                      outputs: [ValueInfo(name: "a", type: nil), ValueInfo(name: "b", type: nil), ValueInfo(name: "r", type: nil)], nodes: [
            Node(opType: "Add", inputs: ["one", "one"], outputs: ["a"]),
            Node(opType: "Add", inputs: ["k", "one"], outputs: ["b"]),
            Node(opType: "RandomUniform", inputs: [], outputs: ["r"], attributes: [Attribute(name: "shape", value: .ints([2]))]),
        ], initializers: NamedTensors([("one", i64([1])), ("k", i64([5]))]))
        #expect(!KernelFolding.run(&g))
        #expect(g.nodes.count == 3)
    }

    @Test func evaluatesTheShapeSizedOps() throws {
        let nodes: [Node] = [
            Node(opType: "Range", inputs: ["s", "l", "d"], outputs: ["range"]),
            Node(opType: "Slice", inputs: ["range", "st", "en"], outputs: ["sliced"]),
            Node(opType: "Equal", inputs: ["sliced", "two"], outputs: ["eq"]),
            Node(opType: "Where", inputs: ["eq", "seven", "sliced"], outputs: ["where"]),
            Node(opType: "Cast", inputs: ["where"], outputs: ["f"], attributes: [Attribute(name: "to", value: .int(1))]),
            Node(opType: "Sqrt", inputs: ["f"], outputs: ["sq"]),
            Node(opType: "ConstantOfShape", inputs: ["cshape"], outputs: ["cos"],
                 attributes: [Attribute(name: "value", value: .tensor(i64([7])))]),
            Node(opType: "Div", inputs: ["seven", "two"], outputs: ["div"]),
            Node(opType: "Div", inputs: ["minus", "two"], outputs: ["negdiv"]),
            Node(opType: "Add", inputs: ["sq", "x"], outputs: ["y"]),
            Node(opType: "Add", inputs: ["cos", "div"], outputs: ["z"]),
            Node(opType: "Add", inputs: ["negdiv", "div"], outputs: ["w"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [3]))],
                      outputs: ["y", "z", "w"].map { ValueInfo(name: $0, type: nil) }, nodes: nodes,
                      initializers: NamedTensors([("s", i64([0], scalar: true)), ("l", i64([5], scalar: true)), ("d", i64([1], scalar: true)),
                                                  ("st", i64([1])), ("en", i64([4])), ("two", i64([2], scalar: true)),
                                                  ("minus", i64([-1], scalar: true)), ("cshape", i64([2])), ("seven", i64([7], scalar: true))]))
        #expect(KernelFolding.run(&g))
        try g.verifyAndSort()
        #expect(g.initializers["range"] == nil || g.initializers["range"]?.scalars(as: Int64.self) == [0, 1, 2, 3, 4])
        #expect(g.initializers["sq"]?.scalars(as: Float.self) == [1, 7, 3].map { Float($0).squareRoot() })
        #expect(g.initializers["cos"]?.scalars(as: Int64.self) == [7, 7])
        #expect(g.initializers["div"]?.scalars(as: Int64.self) == [3])
        // -1 / 2 folds to what the Div kernel gives: truncation toward zero, as ONNX Runtime.
        #expect(g.initializers["negdiv"]?.scalars(as: Int64.self) == [0])
        #expect(g.nodes.map(\.opType) == ["Add", "Add", "Add"])
    }
}
