import DLGraph
import DLRuntime
import DLTensor

/// Deterministic float32 test data in [-1, 1) from a linear congruential generator, so a seed
/// always gives the same tensor.
func seededRandom(_ shape: [Int], seed: Int) -> Tensor {
    var s = UInt64(seed) &* 6364136223846793005 &+ 1442695040888963407
    let v: [Float] = (0..<shape.reduce(1, *)).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
    }
    return Tensor(shape: shape, scalars: v)
}

/// Runs `g` one node at a time, each node its own graph: no plan spans two nodes and nothing is
/// fused, the reference the planned and optimised runs are compared with. Returns every value.
func runNodeByNode(_ g: Graph, _ feed: [String: Tensor]) throws -> [String: Tensor] {
    var values = feed
    for (name, t) in g.initializers { values[name] = t }
    for node in g.nodes {
        // Each value once, though a node may read it twice (a fused convolution's input and residual).
        var seen: Set<String> = []
        let ins = node.inputs.filter { !$0.isEmpty && seen.insert($0).inserted }
        let one = Graph(name: "one", inputs: ins.map { ValueInfo(name: $0, type: nil) },
                        outputs: node.outputs.filter { !$0.isEmpty }.map { ValueInfo(name: $0, type: nil) }, nodes: [node])
        var f: [String: Tensor] = [:]
        for i in ins { f[i] = values[i] }
        for (k, v) in try Executor(graph: one).run(f) { values[k] = v }
    }
    return values
}

/// `Transpose(x, perm)` writing `y`: the channels-first/last moves of the transpose-sinking tests.
func transposeNode(_ x: String, _ y: String, _ perm: [Int]) -> Node {
    Node(opType: "Transpose", inputs: [x], outputs: [y], attributes: [Attribute(name: "perm", value: .ints(perm))])
}
