import DLAutograd
import DLGraph
import DLTensor
import Testing

/// Max/Min, ReduceMax/ReduceMin/ReduceProd, Tile and Pad against central finite differences.
/// Inputs are spread out so no two candidates lie within the finite-difference step of each other
/// (where max/min have a kink); ties are checked separately with exact values.
struct SelectionRuleTests {
    typealias T = GradientRuleTests

    /// Distinct values (a shuffled ramp with gaps of 0.1) so max/min picks are stable under ±epsilon.
    static func spread(_ shape: [Int], seed: UInt64, offset: Float = 0) -> Tensor {
        let n = shape.reduce(1, *)
        var rng = TrainingRNG(seed: seed)
        var v = (0..<n).map { Float($0) * 0.1 - Float(n) * 0.05 + offset }
        for i in stride(from: n - 1, to: 0, by: -1) { v.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return Tensor(shape: shape, scalars: v)
    }

    @Test func elementwiseMaxMin() throws {
        let a = Self.spread([2, 3, 4], seed: 1), b = Self.spread([3, 1], seed: 2, offset: 0.03), c = Self.spread([4], seed: 3, offset: 0.06)
        for op in ["Max", "Min"] {
            try T.check([T.node(op, ["a", "b", "c"])], inputs: ["a": a], initializers: ["b": b, "c": c], epsilon: 1e-3)
            try T.check([T.node(op, ["a", "b"])], inputs: ["a": a], initializers: ["b": b], epsilon: 1e-3)
        }
    }

    @Test func reduceMaxMinProd() throws {
        let x = Self.spread([2, 3, 4], seed: 4)
        for op in ["ReduceMax", "ReduceMin"] {
            try T.check([T.node(op, ["x", "ax"], ["y"], [Attribute(name: "keepdims", value: .int(0))])], inputs: ["x": x],
                        initializers: ["ax": Tensor(shape: [1], scalars: [Int64(1)])], wrt: ["x"], epsilon: 1e-3)
            try T.check([T.node(op, ["x", "ax"])], inputs: ["x": x], initializers: ["ax": Tensor(shape: [2], scalars: [Int64(0), -1])],
                        wrt: ["x"], epsilon: 1e-3)
            try T.check([T.node(op, ["x"])], inputs: ["x": x], epsilon: 1e-3)
        }
        let p = T.randomTensor([2, 3, 4], seed: 5, scale: 0.5, offset: 1)
        try T.check([T.node("ReduceProd", ["p", "ax"])], inputs: ["p": p], initializers: ["ax": Tensor(shape: [1], scalars: [Int64(2)])],
                    wrt: ["p"], epsilon: 1e-3)
        try T.check([T.node("ReduceProd", ["p", "ax"], ["y"], [Attribute(name: "keepdims", value: .int(0))])], inputs: ["p": p],
                    initializers: ["ax": Tensor(shape: [2], scalars: [Int64(0), 1])], wrt: ["p"], epsilon: 1e-3)
        // Products with one and with two zeros in a group (the rule must not divide by zero).
        let z = Tensor(shape: [3, 3], scalars: [Float(0), 2, 3, 0, 0, 5, 1.5, -2, 0.5])
        try T.check([T.node("ReduceProd", ["z", "ax"])], inputs: ["z": z], initializers: ["ax": Tensor(shape: [1], scalars: [Int64(1)])],
                    wrt: ["z"], epsilon: 1e-3)
    }

    /// On exact ties the gradient is shared evenly, as torch.maximum and torch.amax share it.
    @Test func tiesShareTheGradient() throws {
        let x = Tensor(shape: [2, 3], scalars: [Float(1), 4, 4, 2, 2, 2])
        let g = T.graph([T.node("ReduceMax", ["x", "ax"], ["r"], [Attribute(name: "keepdims", value: .int(0))]),
                         T.node("ReduceSum", ["r"], ["y"], [Attribute(name: "keepdims", value: .int(0))])],
                        inputs: ["x": x], initializers: ["ax": Tensor(shape: [1], scalars: [Int64(1)])], outputs: ["y"])
        let r = try Self.gradients(g, inputs: ["x": x], wrt: ["x"])
        let third = Double(Float(1) / 3)
        let expected: [Double] = [0, 0.5, 0.5, third, third, third]
        #expect(r["x"]?.doubles() == expected)
        let a = Tensor(shape: [3], scalars: [Float(1), 5, 2]), b = Tensor(shape: [3], scalars: [Float(1), 3, 7])
        let m = T.graph([T.node("Max", ["a", "b"], ["r"]), T.node("ReduceSum", ["r"], ["y"], [Attribute(name: "keepdims", value: .int(0))])],
                        inputs: ["a": a, "b": b], outputs: ["y"])
        let rm = try Self.gradients(m, inputs: ["a": a, "b": b], wrt: ["a", "b"])
        #expect(rm["a"]?.doubles() == [0.5, 1, 0])
        #expect(rm["b"]?.doubles() == [0.5, 0, 1])
    }

    static func gradients(_ g: Graph, inputs: [String: Tensor], wrt: [String]) throws -> [String: Tensor] {
        let d = try Differentiator(graph: g, wrt: wrt)
        var rng = TrainingRNG(seed: 0)
        let tape = try d.forward(inputs, rng: &rng)
        return try d.backward(tape, seeds: ["y": Tensor(shape: [], scalars: [Float(1)])])
    }

    @Test func tile() throws {
        let x = T.randomTensor([2, 3], seed: 6)
        try T.check([T.node("Tile", ["x", "r"])], inputs: ["x": x], initializers: ["r": Tensor(shape: [2], scalars: [Int64(3), 2])], wrt: ["x"])
        try T.check([T.node("Tile", ["x", "r"])], inputs: ["x": x], initializers: ["r": Tensor(shape: [2], scalars: [Int64(1), 1])], wrt: ["x"])
    }

    @Test(arguments: ["constant", "edge", "reflect", "wrap"])
    func pad(mode: String) throws {
        let x = T.randomTensor([2, 3, 4], seed: 7)
        let attrs = [Attribute(name: "mode", value: .string(mode))]
        // All axes, with a crop (negative pad) on the last axis's end.
        try T.check([T.node("Pad", ["x", "p"], ["y"], attrs)], inputs: ["x": x],
                    initializers: ["p": Tensor(shape: [6], scalars: [Int64(1), 2, 3, 0, 2, -1])], wrt: ["x"])
        // Selected axes (opset 18 form), with a constant value input for constant mode.
        try T.check([T.node("Pad", ["x", "p", "v", "ax"], ["y"], attrs)], inputs: ["x": x],
                    initializers: ["p": Tensor(shape: [4], scalars: [Int64(2), 1, 1, 3]), "v": Tensor(shape: [], scalars: [Float(0.5)]),
                                   "ax": Tensor(shape: [2], scalars: [Int64(-1), 1])], wrt: ["x"])
    }
}
