import DLGraph
import DLKernels
import DLTensor
import Testing
@testable import DLRuntime

/// Planned runs on weights packed for the AVX-512 kernels give what the same nodes give one at a
/// time (weights fed as inputs, so nothing is packed), for every op family that packs.
@Suite(.serialized) struct PackedWeightsTests {
    /// x [N, 8, 8, 8] -> Conv 3x3 pad 1 (+ Relu) -> Conv 3x3 + residual Add + Relu -> strided Conv
    /// (not packed) -> Flatten -> Gemm transB with bias -> Gemm with C [M, N], alpha 2, beta 0.5
    /// -> MatMul + Add + Relu -> MatMul (3-D A) -> output.
    func graph() -> Graph {
        let inits = NamedTensors([
            ("w1", seededRandom([6, 8, 3, 3], seed: 1)), ("b1", seededRandom([6], seed: 2)),
            ("w2", seededRandom([6, 6, 3, 3], seed: 3)),
            ("w3", seededRandom([4, 6, 3, 3], seed: 4)),
            ("g1", seededRandom([40, 64], seed: 5)), ("gb1", seededRandom([40], seed: 6)),
            ("g2", seededRandom([40, 36], seed: 7)), ("gc2", seededRandom([1, 36], seed: 8)),
            ("m1", seededRandom([36, 50], seed: 9)), ("mb1", seededRandom([50], seed: 10)),
            ("shape", Tensor(shape: [3], scalars: [Int64(-1), Int64(5), Int64(10)])),
            ("m2", seededRandom([10, 7], seed: 11)),
        ])
        let pad1 = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
        let nodes = [
            Node(opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"], attributes: [pad1]),
            Node(opType: "Relu", inputs: ["c1"], outputs: ["r1"]),
            Node(opType: "Conv", inputs: ["r1", "w2"], outputs: ["c2"], attributes: [pad1]),
            Node(opType: "Add", inputs: ["c2", "r1"], outputs: ["a2"]),
            Node(opType: "Relu", inputs: ["a2"], outputs: ["r2"]),
            Node(opType: "Conv", inputs: ["r2", "w3"], outputs: ["c3"],
                 attributes: [pad1, Attribute(name: "strides", value: .ints([2, 2]))]),
            Node(opType: "Flatten", inputs: ["c3"], outputs: ["f"]),
            Node(opType: "Gemm", inputs: ["f", "g1", "gb1"], outputs: ["h1"], attributes: [Attribute(name: "transB", value: .int(1))]),
            Node(opType: "Gemm", inputs: ["h1", "g2", "gc2"], outputs: ["h2"],
                 attributes: [Attribute(name: "alpha", value: .float(2)), Attribute(name: "beta", value: .float(0.5))]),
            Node(opType: "MatMul", inputs: ["h2", "m1"], outputs: ["mm"]),
            Node(opType: "Add", inputs: ["mm", "mb1"], outputs: ["ma"]),
            Node(opType: "Relu", inputs: ["ma"], outputs: ["mr"]),
            Node(opType: "Reshape", inputs: ["mr", "shape"], outputs: ["rs"]),
            Node(opType: "MatMul", inputs: ["rs", "m2"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(8), .fixed(8)]))],
                      outputs: Self.checked.map { ValueInfo(name: $0, type: nil) }, nodes: nodes, initializers: inits)
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    /// Every packing node's result is an output, so a mismatch names the node.
    static let checked = ["y", "r1", "r2", "h1", "h2", "mr"]

    /// Runs `g` planned with `workers` threads and node by node on each input, and compares the
    /// outputs `names`: sums run in another order, so differences count relative to each
    /// output's scale.
    func expectPlannedMatchesNodeByNode(_ g: Graph, workers: Int, inputs: [Tensor], names: [String]) throws {
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        let exec = try Executor(graph: g)
        for x in inputs {
            let got = try exec.run(["x": x])
            let want = try runNodeByNode(g, ["x": x])
            for name in names {
                let a = try #require(got[name]).scalars(as: Float.self), b = try #require(want[name]).scalars(as: Float.self)
                #expect(a.count == b.count && !a.isEmpty, "\(name)")
                let scale = max(1, b.map(abs).max() ?? 0)
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-5 * scale, "\(name) for input \(x.shape): difference \(worst) at scale \(scale)")
            }
            #expect(got[names[0]]?.shape == want[names[0]]?.shape)
        }
    }

    @Test(arguments: [1, 2])
    func plannedRunsOnPackedWeightsMatchNodeByNode(workers: Int) throws {
        let inputs = [(1, 21), (3, 22), (1, 23)].map { seededRandom([$0.0, 8, 8, 8], seed: $0.1) }
        try expectPlannedMatchesNodeByNode(graph(), workers: workers, inputs: inputs, names: Self.checked)
    }

    /// A bidirectional LSTM (the fast kernel's form) whose W and R are initializers.
    func lstmGraph() -> Graph {
        let hidden = 20, input = 12
        let inits = NamedTensors([
            ("W", seededRandom([2, 4 * hidden, input], seed: 31)), ("R", seededRandom([2, 4 * hidden, hidden], seed: 32)),
            ("B", seededRandom([2, 8 * hidden], seed: 33)),
        ])
        let node = Node(opType: "LSTM", inputs: ["x", "W", "R", "B"], outputs: ["y", "yh", "yc"],
                        attributes: [Attribute(name: "hidden_size", value: .int(hidden)),
                                     Attribute(name: "direction", value: .string("bidirectional"))])
        var g = Graph(name: "lstm", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.fixed(7), .symbolic("N"), .fixed(input)]))],
                      outputs: ["y", "yh", "yc"].map { ValueInfo(name: $0, type: nil) }, nodes: [node], initializers: inits)
        g.metadata.opsetImports = [("", 14)]
        return g
    }

    @Test(arguments: [1, 2])
    func lstmOnPackedWeightsMatchesNodeByNode(workers: Int) throws {
        let g = lstmGraph()
        let inputs = [(1, 41), (9, 42)].map { seededRandom([7, $0.0, 12], seed: $0.1) }
        try expectPlannedMatchesNodeByNode(g, workers: workers, inputs: inputs, names: ["y", "yh", "yc"])
        if PackedMatrix.isSupported {
            var consts: [String: Tensor] = [:]
            for (name, t) in g.initializers { consts[name] = t }
            #expect(WeightPacks().packed(for: g.nodes[0], consts: consts)?.count == 4)
        }
    }

    @Test(.enabled(if: PackedMatrix.isSupported))
    func weightsArePackedOncePerExecutorForEveryPackingNode() throws {
        let packs = WeightPacks()
        let (g, _) = GraphOptimizer.optimize(graph())
        var consts: [String: Tensor] = [:]
        for (name, t) in g.initializers { consts[name] = t }
        var packedNodes: [String] = []
        for node in g.nodes {
            guard let first = packs.packed(for: node, consts: consts) else { continue }
            packedNodes.append(node.opType)
            // Asked again (a second plan), the same packed matrices come back.
            let again = try #require(packs.packed(for: node, consts: consts))
            #expect(first.count == again.count && zip(first, again).allSatisfy { $0 === $1 })
        }
        // Three convolutions (one of stride 2), two Gemms, two MatMuls.
        #expect(packedNodes.count == 7, "packed: \(packedNodes)")
        // The strided one packs nothing once its output is known to be too small for the direct
        // kernel's tiles (2 × 2: 4 of a 32-pixel tile, even wrapped), and packs at 4 × 4 (16
        // pixels in a tile, wrapped) and at rows of 28.
        let strided = try #require(g.nodes.first { node in
            (try? WindowAttributes(node: node))?.strides == [2, 2]
        })
        let short = TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(2), .fixed(2)])
        #expect(WeightPacks().packed(for: strided, consts: consts, outputType: short) == nil)
        let small = TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(4), .fixed(4)])
        #expect(WeightPacks().packed(for: strided, consts: consts, outputType: small) != nil)
        let wide = TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(8), .fixed(28), .fixed(28)])
        #expect(WeightPacks().packed(for: strided, consts: consts, outputType: wide) != nil)
    }
}
