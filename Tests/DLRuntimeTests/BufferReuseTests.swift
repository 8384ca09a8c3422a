import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// The plan's buffer recycling: a steady-state run allocates no tensor storage, and elementwise
/// ops written over their dying input give exactly what they give out of place.
@Suite(.serialized) struct BufferReuseTests {
    /// x [N,8,16] -> MatMul+Add -> Relu -> Mul -> Sigmoid -> Sub x -> Softmax -> Transpose ->
    /// Reshape -> Gemm -> LayerNormalization -> Gather -> Tanh, plus Div by a constant on a side
    /// branch that is a second output (so it must not be overwritten).
    func graph() -> Graph {
        let inits = NamedTensors([
            ("w", seededRandom([16, 16], seed: 1)), ("b", seededRandom([16], seed: 2)), ("half", Tensor(shape: [], scalars: [Float(0.5)])),
            ("shape", Tensor(shape: [2], scalars: [Int64(-1), Int64(8)])),
            ("gw", seededRandom([8, 4], seed: 3)), ("gb", seededRandom([4], seed: 4)),
            ("scale", seededRandom([4], seed: 5)), ("bias", seededRandom([4], seed: 6)),
            ("idx", Tensor(shape: [2], scalars: [Int64(0), Int64(2)])), ("three", Tensor(shape: [], scalars: [Float(3)])),
        ])
        let nodes = [
            Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(opType: "Add", inputs: ["m", "b"], outputs: ["a"]),
            Node(opType: "Relu", inputs: ["a"], outputs: ["r"]),
            Node(opType: "Mul", inputs: ["r", "half"], outputs: ["s"]),
            Node(opType: "Sigmoid", inputs: ["s"], outputs: ["t"]),
            Node(opType: "Div", inputs: ["t", "three"], outputs: ["side"]),
            Node(opType: "Sub", inputs: ["t", "x"], outputs: ["u"]),
            Node(opType: "Softmax", inputs: ["u"], outputs: ["sm"], attributes: [Attribute(name: "axis", value: .int(-1))]),
            Node(opType: "Transpose", inputs: ["sm"], outputs: ["tr"], attributes: [Attribute(name: "perm", value: .ints([0, 2, 1]))]),
            Node(opType: "Reshape", inputs: ["tr", "shape"], outputs: ["rs"]),
            Node(opType: "Gemm", inputs: ["rs", "gw", "gb"], outputs: ["g"]),
            Node(opType: "LayerNormalization", inputs: ["g", "scale", "bias"], outputs: ["ln"], attributes: [Attribute(name: "axis", value: .int(-1))]),
            Node(opType: "Gather", inputs: ["ln", "idx"], outputs: ["ga"], attributes: [Attribute(name: "axis", value: .int(1))]),
            Node(opType: "Tanh", inputs: ["ga"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(16)]))],
                      outputs: [ValueInfo(name: "y", type: nil), ValueInfo(name: "side", type: nil)], nodes: nodes, initializers: inits)
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    /// A pool keeps only what it made: storages made by another pool (a subgraph plan's) or by a
    /// kernel for itself are let go.
    @Test func aPoolTakesBackOnlyTheStoragesItMade() {
        let pool = BufferPool(), other = BufferPool()
        var foreign: Tensor? = Tensor(dtype: .float32, shape: [4], sharing: other.take(byteCount: 16))
        pool.give(&foreign)
        var unmarked: Tensor? = Tensor(zeros: .float32, shape: [4])
        pool.give(&unmarked)
        #expect(pool.freeCount == 0)
        var own: Tensor? = Tensor(dtype: .float32, shape: [4], sharing: pool.take(byteCount: 16))
        pool.give(&own)
        #expect(pool.freeCount == 1)
    }

    /// The leak planned runs once had: a step whose kernel allocates its output for itself (a float16
    /// Slice here, read by a Cast that cannot write over it; Slice, Pad, Shape and LSTM in silero-vad) handed that storage to the pool at its last
    /// reader, and the pool kept it though nothing takes that size, one more on every run.
    @Test func storagesKernelsMadeForThemselvesAreNotHoarded() throws {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float16, shape: [2, 3]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "Slice", inputs: ["x", "starts", "ends", "axes"], outputs: ["p"]),
                              Node(opType: "Cast", inputs: ["p"], outputs: ["c"], attributes: [Attribute(name: "to", value: .int(1))]),
                              Node(opType: "MatMul", inputs: ["c", "w"], outputs: ["y"])],
                      initializers: NamedTensors([("starts", Tensor(shape: [1], scalars: [Int64(0)])), ("ends", Tensor(shape: [1], scalars: [Int64(2)])),
                                                  ("axes", Tensor(shape: [1], scalars: [Int64(1)])), ("w", seededRandom([2, 4], seed: 2))]))
        g.metadata.opsetImports = [("", 17)]
        let e = try Executor(graph: g)
        let x = seededRandom([2, 3], seed: 1).converted(to: .float16)
        var kept: [Int] = []
        for _ in 0..<20 {
            let (stats, out) = try #require(try e.planRunStats(["x": x]), "the graph did not plan")
            #expect(stats.unpooledNodes.count == 1, "this test needs one kernel that allocates for itself: \(stats.unpooledNodes)")
            #expect(out["y"]?.shape == [2, 4])
            kept.append(stats.kept)
        }
        #expect(kept[19] == kept[2], "the pool grew from \(kept[2]) to \(kept[19]) free buffers")
    }

    @Test func steadyStateRunAllocatesNothing() throws {
        let e = try Executor(graph: graph())
        let x = seededRandom([3, 8, 16], seed: 9)
        // First run: the pool fills.
        guard let (first, _) = try e.planRunStats(["x": x]) else {
            Issue.record("the graph did not plan")
            return
        }
        #expect(first.allocations > 0)
        for _ in 0..<3 {
            let (stats, out) = try #require(try e.planRunStats(["x": x]), "the graph did not plan")
            #expect(stats.allocations == 0, "steady state allocated \(stats.allocations) buffers")
            #expect(stats.unpooledOutputs == 0, "step outputs bypassed the pool: \(stats.unpooledNodes)")
            #expect(stats.inPlaceSteps >= 2, "only \(stats.inPlaceSteps) steps ran in place")
            #expect(out["y"]?.shape == [48, 2])
        }
        // Outputs the caller keeps cannot be reused: one new buffer per kept output, no more.
        var kept: [[String: Tensor]] = []
        for _ in 0..<2 {
            let (stats, out) = try #require(try e.planRunStats(["x": x]), "the graph did not plan")
            #expect(stats.allocations <= 2)
            kept.append(out)
        }
        // Kept outputs were not overwritten by later runs.
        #expect(kept[0]["y"]!.bitwiseEqual(kept[1]["y"]!))
    }

    /// Kernels that once allocated for themselves on every run (so their pages faulted in anew,
    /// 0.15 ms of selfie_segmentation's 1.9): a Resize of two axes (its first pass's buffer) and
    /// DepthToSpace/SpaceToDepth (an index map and a zero-filled output).
    @Test(arguments: ["Resize", "DepthToSpace", "SpaceToDepth"])
    func rearrangingKernelsAllocateNothingInSteadyState(_ op: String) throws {
        var attributes: [Attribute] = []
        var inputs = ["x"]
        var inits: [(String, Tensor)] = []
        switch op {
        case "Resize":
            attributes = [Attribute(name: "mode", value: .string("linear"))]
            inputs = ["x", "", "scales"]
            inits = [("scales", Tensor(shape: [4], scalars: [Float(1), 1, 2, 2]))]
        default:
            attributes = [Attribute(name: "blocksize", value: .int(2))]
        }
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1, 8, 6, 4]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: op, inputs: inputs, outputs: ["r"], attributes: attributes),
                              Node(opType: "Sigmoid", inputs: ["r"], outputs: ["s"]),
                              Node(opType: "Mul", inputs: ["s", "r"], outputs: ["y"])],
                      initializers: NamedTensors(inits))
        g.metadata.opsetImports = [("", 17)]
        let e = try Executor(graph: g)
        let x = seededRandom([1, 8, 6, 4], seed: 12)
        _ = try #require(try e.planRunStats(["x": x]), "the graph did not plan")
        for _ in 0..<3 {
            let (stats, _) = try #require(try e.planRunStats(["x": x]))
            #expect(stats.allocations == 0, "\(op): steady state allocated \(stats.allocations) buffers")
            #expect(stats.unpooledOutputs == 0, "\(op): step outputs bypassed the pool: \(stats.unpooledNodes)")
        }
    }

    @Test func inPlaceEqualsOutOfPlace() throws {
        let g = graph()
        let x = seededRandom([5, 8, 16], seed: 11)
        let inPlace = try Executor(graph: g).run(["x": x])
        let input = x.scalars(as: Float.self)
        let e = try Executor(graph: g, options: RuntimeOptions(inPlace: false))
        let (stats, outOfPlace) = try #require(try e.planRunStats(["x": x]))
        #expect(stats.inPlaceSteps == 0)
        for name in ["y", "side"] {
            let a = try #require(inPlace[name]), b = try #require(outOfPlace[name])
            #expect(a.bitwiseEqual(b), "output \(name) differs in place")
        }
        // The caller's input was never written.
        #expect(x.scalars(as: Float.self) == input)
    }
}
