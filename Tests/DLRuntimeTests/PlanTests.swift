import DLGraph
import DLRuntime
import DLTensor
import Testing

/// The planned executor (shape folding, passes, fused kernels) against the same graph run one
/// node at a time, where no plan spans two nodes and nothing is fused.
@Suite struct PlanTests {
    /// x [N,3,8,8] -> Conv+Relu -> MaxPool 2x2 -> Identity -> Reshape to [N, -1] through
    /// Shape/Gather/Unsqueeze/Concat (as torch exports flatten) -> Gemm -> Relu -> Add.
    func graph() -> Graph {
        let inits = NamedTensors([
            ("w", seededRandom([4, 3, 3, 3], seed: 1)), ("b", seededRandom([4], seed: 2)),
            ("fw", seededRandom([5, 64], seed: 3)), ("fb", seededRandom([5], seed: 4)), ("shift", seededRandom([5], seed: 5)),
            ("zero", Tensor(shape: [], scalars: [Int64(0)])), ("minus1", Tensor(shape: [1], scalars: [Int64(-1)])),
        ])
        let nodes = [
            Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: [Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]),
            Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(opType: "MaxPool", inputs: ["r"], outputs: ["p"], attributes: [
                Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2]))]),
            Node(opType: "Identity", inputs: ["p"], outputs: ["pi"]),
            Node(opType: "Shape", inputs: ["pi"], outputs: ["s"]),
            Node(opType: "Gather", inputs: ["s", "zero"], outputs: ["n"]),
            Node(opType: "Unsqueeze", inputs: ["n", "zero1"], outputs: ["n1"]),
            Node(opType: "Concat", inputs: ["n1", "minus1"], outputs: ["shape"], attributes: [Attribute(name: "axis", value: .int(0))]),
            Node(opType: "Reshape", inputs: ["pi", "shape"], outputs: ["f"]),
            Node(opType: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["g"], attributes: [Attribute(name: "transB", value: .int(1))]),
            Node(opType: "Relu", inputs: ["g"], outputs: ["gr"]),
            Node(opType: "Add", inputs: ["gr", "shift"], outputs: ["y"]),
        ]
        var all = inits
        all["zero1"] = Tensor(shape: [1], scalars: [Int64(0)])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes, initializers: all)
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    /// Runs `g` one node at a time, each node as its own one-node graph.
    func stepwise(_ g: Graph, _ x: Tensor) throws -> Tensor {
        try #require(try runNodeByNode(g, ["x": x])["y"])
    }

    @Test func plannedRunMatchesNodeByNode_atTwoBatchSizes() throws {
        let g = graph()
        let exec = try Executor(graph: g)
        for (batch, seed) in [(1, 10), (3, 11), (1, 12)] {
            let x = seededRandom([batch, 3, 8, 8], seed: seed)
            let got = try #require(try exec.run(["x": x])["y"])
            let want = try stepwise(g, x)
            #expect(got.shape == [batch, 5])
            let a = got.scalars(as: Float.self), b = want.scalars(as: Float.self)
            #expect(a.count == b.count)
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        }
        // The public graph is the one given: the fusions live in the executor's private copy.
        #expect(exec.graph.nodes.map(\.opType).contains("Relu"))
        #expect(!exec.graph.nodes.contains { $0.domain == FusedOps.domain })
    }

    @Test func plannedRunReportsBadInputsAsBefore() throws {
        let exec = try Executor(graph: graph())
        do {
            _ = try exec.run(["x": seededRandom([1, 4, 8, 8], seed: 1)])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("x"))
        }
    }

    @Test func concurrentRunsShareOnePlan() async throws {
        let exec = try Executor(graph: graph())
        let x = seededRandom([2, 3, 8, 8], seed: 7)
        let want = try #require(try exec.run(["x": x])["y"]).scalars(as: Float.self)
        try await withThrowingTaskGroup(of: [Float].self) { group in
            for _ in 0..<8 {
                group.addTask { try #require(try exec.run(["x": x])["y"]).scalars(as: Float.self) }
            }
            for try await r in group { #expect(r == want) }
        }
    }

    /// A torch-style linear layer on [N, seq, K] (MatMul by a constant, bias Add, Relu) runs as
    /// one FusedMatMul and matches the node-by-node run at two batch sizes.
    /// OpenVINO IR's bias `[1, 1, N]` folds too, and `[1, 1, 1, N]` gives the Add's rank-4 result.
    @Test(arguments: [[9], [1, 1, 9], [1, 1, 1, 9]] as [[Int]])
    func fusedMatMulMatchesNodeByNode(_ biasShape: [Int]) throws {
        var g = Graph(name: "lin", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(7), .fixed(6)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
            Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(opType: "Add", inputs: ["b", "m"], outputs: ["a"]),
            Node(opType: "Relu", inputs: ["a"], outputs: ["y"]),
        ], initializers: NamedTensors([("w", seededRandom([6, 9], seed: 21)), ("b", seededRandom(biasShape, seed: 22))]))
        g.metadata.opsetImports = [("", 17)]
        #expect(GraphOptimizer.optimize(g).0.nodes.map(\.opType) == ["FusedMatMul"])
        let exec = try Executor(graph: g)
        for (batch, seed) in [(1, 23), (4, 24)] {
            let x = seededRandom([batch, 7, 6], seed: seed)
            let got = try #require(try exec.run(["x": x])["y"])
            let want = try stepwise(g, x)
            #expect(got.shape == (biasShape.count == 4 ? [1, batch, 7, 9] : [batch, 7, 9]))
            #expect(got.shape == want.shape)
            let a = got.scalars(as: Float.self), b = want.scalars(as: Float.self)
            #expect(a.count == b.count)
            #expect(a.contains { $0 == 0 } && a.contains { $0 > 0 })
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        }
    }

    /// The float32 LSTM (one GEMM for the input projection, one per step) against the general
    /// kernel, which float64 inputs take, in both directions with initial states and bias.
    @Test(arguments: ["forward", "reverse", "bidirectional"])
    func fastLSTMMatchesTheGeneralKernel(direction: String) throws {
        let dirs = direction == "bidirectional" ? 2 : 1
        let (seq, batch, input, hidden) = (5, 3, 4, 6)
        let inputs = [seededRandom([seq, batch, input], seed: 1), seededRandom([dirs, 4 * hidden, input], seed: 2),
                      seededRandom([dirs, 4 * hidden, hidden], seed: 3), seededRandom([dirs, 8 * hidden], seed: 4),
                      Tensor(shape: [batch], scalars: [Int32](repeating: Int32(seq), count: batch)),
                      seededRandom([dirs, batch, hidden], seed: 5), seededRandom([dirs, batch, hidden], seed: 6)]
        func run(_ dtype: DType) throws -> [Tensor] {
            let names = ["X", "W", "R", "B", "lens", "h0", "c0"]
            let ts = inputs.enumerated().map { $0.offset == 4 ? $0.element : $0.element.converted(to: dtype) }
            let g = Graph(name: "lstm", inputs: zip(names, ts).map { ValueInfo(name: $0.0, type: TensorType(dtype: $0.1.dtype, shape: $0.1.shape)) },
                          outputs: ["Y", "Yh", "Yc"].map { ValueInfo(name: $0, type: nil) },
                          nodes: [Node(opType: "LSTM", inputs: names, outputs: ["Y", "Yh", "Yc"], attributes: [
                              Attribute(name: "hidden_size", value: .int(hidden)), Attribute(name: "direction", value: .string(direction))])])
            let out = try Executor(graph: g).run(Dictionary(uniqueKeysWithValues: zip(names, ts)))
            return try ["Y", "Yh", "Yc"].map { try #require(out[$0]) }
        }
        let fast = try run(.float32), general = try run(.float64)
        for (a, b) in zip(fast, general) {
            #expect(a.shape == b.shape)
            let x = a.doubles(), y = b.doubles()
            #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 })
        }
        #expect(fast[0].shape == [seq, dirs, batch, hidden])
    }

    /// Batch 1 on two workers: the recurrence splits the hidden units (two slices of 32, taken as
    /// tickets step by step), and gives exactly the one-worker bits, in every direction, with
    /// initial states; and the general kernel's numbers.
    @Test(arguments: ["forward", "reverse", "bidirectional"])
    func fastLSTMOfOneRowSplitsTheHiddenUnitsWithTheSameBits(direction: String) throws {
        let dirs = direction == "bidirectional" ? 2 : 1
        let (seq, batch, input, hidden) = (7, 1, 5, 64)
        let names = ["X", "W", "R", "B", "lens", "h0", "c0"]
        let values = [seededRandom([seq, batch, input], seed: 11), seededRandom([dirs, 4 * hidden, input], seed: 12),
                      seededRandom([dirs, 4 * hidden, hidden], seed: 13), seededRandom([dirs, 8 * hidden], seed: 14),
                      Tensor(shape: [batch], scalars: [Int32(seq)]),
                      seededRandom([dirs, batch, hidden], seed: 15), seededRandom([dirs, batch, hidden], seed: 16)]
        // The weights are initializers, so the plan packs R (the slices read its panels).
        var g = Graph(name: "lstm", inputs: [ValueInfo(name: "X", type: TensorType(dtype: .float32, shape: [seq, batch, input]))],
                      outputs: ["Y", "Yh", "Yc"].map { ValueInfo(name: $0, type: nil) },
                      nodes: [Node(opType: "LSTM", inputs: names, outputs: ["Y", "Yh", "Yc"], attributes: [
                          Attribute(name: "hidden_size", value: .int(hidden)), Attribute(name: "direction", value: .string(direction))])],
                      initializers: NamedTensors(zip(names, values).dropFirst().map { ($0.0, $0.1) }))
        g.metadata.opsetImports = [("", 17)]
        func run(threads: Int) throws -> [Tensor] {
            let saved = ComputeThreads.count
            ComputeThreads.set(threads)
            defer { ComputeThreads.set(saved) }
            let out = try Executor(graph: g).run(["X": values[0]])
            return try ["Y", "Yh", "Yc"].map { try #require(out[$0]) }
        }
        let one = try run(threads: 1), two = try run(threads: 2)
        for (a, b) in zip(one, two) {
            #expect(a.shape == b.shape && a.withUnsafeBytes { Array($0) } == b.withUnsafeBytes { Array($0) })
        }
        // The general kernel (float64) on the same numbers.
        var general = g
        general.inputs = [ValueInfo(name: "X", type: TensorType(dtype: .float64, shape: [seq, batch, input]))]
        general.initializers = NamedTensors(zip(names, values).dropFirst().map { ($0.0, $0.0 == "lens" ? $0.1 : $0.1.converted(to: .float64)) })
        let reference = try Executor(graph: general).run(["X": values[0].converted(to: .float64)])
        for (name, a) in zip(["Y", "Yh", "Yc"], two) {
            let b = try #require(reference[name])
            #expect(zip(a.doubles(), b.doubles()).allSatisfy { abs($0 - $1) <= 1e-5 }, "\(name)")
        }
    }
}
