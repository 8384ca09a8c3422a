import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// Concats assembled in place: steps whose output dies at a Concat write it straight into their
/// slab of the Concat's output, and the result is the one copying gives.
@Suite struct ConcatAssemblyTests {
    /// x [1,4,5,6] -> Conv -> c [1,8,5,6] -> Split -> s0, s1; Add(Sigmoid(s1), s0) -> a;
    /// Tanh(c) -> t; Reshape(Relu(x)) -> rr (a view of its input: copied into its slab);
    /// Sigmoid(c) -> v, read again after the Concat by a Sigmoid that may write over it (so v
    /// is copied: in its slab, that would change y);
    /// y = Concat(a, rr, x, s0, t, v) along channels (x is a graph input and s0 one of Split's
    /// two outputs: both copied), z = Concat(a2, x) along rows (channels before it: not
    /// assembled), and y scaled in place.
    static func graph() -> Graph {
        let inits = NamedTensors([
            ("w", seededRandom([8, 4, 3, 3], seed: 1)), ("shape", Tensor(shape: [4], scalars: [Int64(1), Int64(4), Int64(5), Int64(6)])),
            ("split", Tensor(shape: [2], scalars: [Int64(4), Int64(4)])), ("two", Tensor(shape: [], scalars: [Float(2)])),
        ])
        let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
        let channels = Attribute(name: "axis", value: .int(1))
        let nodes = [
            Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: [pads]),
            Node(opType: "Split", inputs: ["c", "split"], outputs: ["s0", "s1"], attributes: [channels]),
            Node(opType: "Sigmoid", inputs: ["s1"], outputs: ["g"]),
            Node(opType: "Add", inputs: ["g", "s0"], outputs: ["a"]),
            Node(opType: "Tanh", inputs: ["c"], outputs: ["t"]),
            Node(opType: "Relu", inputs: ["x"], outputs: ["r"]),
            Node(opType: "Reshape", inputs: ["r", "shape"], outputs: ["rr"]),
            Node(opType: "Relu", inputs: ["g"], outputs: ["a2"]),
            Node(opType: "Sigmoid", inputs: ["c"], outputs: ["v"]),
            Node(opType: "Concat", inputs: ["a", "rr", "x", "s0", "t", "v"], outputs: ["y"], attributes: [channels]),
            Node(opType: "Concat", inputs: ["a2", "x"], outputs: ["z"], attributes: [Attribute(name: "axis", value: .int(2))]),
            Node(opType: "Sigmoid", inputs: ["v"], outputs: ["u"]),
            Node(opType: "Mul", inputs: ["y", "two"], outputs: ["y2"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 4, 5, 6]))],
                      outputs: [ValueInfo(name: "y2", type: nil), ValueInfo(name: "z", type: nil), ValueInfo(name: "u", type: nil)], nodes: nodes, initializers: inits)
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test func assembledConcatsEqualCopiedOnes() throws {
        let x = seededRandom([1, 4, 5, 6], seed: 7)
        let assembled = try Executor(graph: Self.graph())
        let copied = try Executor(graph: Self.graph(), options: RuntimeOptions(inPlace: false))
        let unplanned = try Executor(graph: Self.graph(), options: RuntimeOptions(plans: false))
        let want = try unplanned.run(["x": x])
        for _ in 0..<3 {
            let (a, ya) = try #require(try assembled.planRunStats(["x": x]), "the graph did not plan")
            let (b, yb) = try #require(try copied.planRunStats(["x": x]), "the graph did not plan")
            // Add and Tanh write their slabs; the Reshape's view is copied into its own.
            #expect(a.slabSteps == 2)
            #expect(b.slabSteps == 0)
            #expect(a.unpooledOutputs == 0, "step outputs bypassed the pool: \(a.unpooledNodes)")
            for name in ["y2", "z", "u"] {
                let reference = try #require(want[name])
                #expect(try #require(ya[name]).bitwiseEqual(reference), "\(name) differs assembled in place")
                #expect(try #require(yb[name]).bitwiseEqual(reference), "\(name) differs copied")
            }
        }
    }

    /// Split's outputs are typed when the plan is built (its kernel run once on zeros), so the
    /// steps after it do not infer their types on every run.
    @Test func stepsAfterASplitKeepTheirTypes() throws {
        let (stats, _) = try #require(try Executor(graph: Self.graph()).planRunStats(["x": seededRandom([1, 4, 5, 6], seed: 7)]))
        #expect(stats.inferringSteps == 0)
    }
}
