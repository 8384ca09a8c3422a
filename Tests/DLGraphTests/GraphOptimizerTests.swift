import DLGraph
import DLTensor
import Testing

/// The pass driver: fixed point with a bound, verification after each pass naming the culprit.
@Suite struct GraphOptimizerTests {
    /// A pass that always claims a change and breaks the graph (reads an undefined value).
    enum Breaker: GraphPass {
        static let name = "breaker"
        static func run(_ graph: inout Graph) -> Bool {
            graph.nodes.append(Node(opType: "Relu", inputs: ["nowhere"], outputs: ["extra"]))
            return true
        }
    }

    /// A pass that always changes something (a fresh Identity each time): never a fixed point.
    enum Restless: GraphPass {
        static let name = "restless"
        static func run(_ graph: inout Graph) -> Bool {
            let n = graph.nodes.count
            graph.nodes.append(Node(opType: "Identity", inputs: ["x"], outputs: ["id\(n)"]))
            return true
        }
    }

    func graph() -> Graph {
        Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2]))],
              outputs: [ValueInfo(name: "y", type: nil)], nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])])
    }

    @Test func aPassBreakingTheGraphIsDroppedAndNamed() {
        let report = GraphOptimizer.optimizeReport(graph(), passes: [Breaker.self])
        #expect(report.applied.isEmpty)
        #expect(report.graph.nodes.count == 1)
        #expect(report.rejected.first?.pass == "breaker")
        #expect(report.rejected.first?.description.contains("breaker") == true)
        do {
            _ = try GraphOptimizer.optimizeStrict(graph(), passes: [Breaker.self])
            Issue.record("expected a verification error")
        } catch {
            #expect(error.pass == "breaker")
        }
    }

    @Test func theRoundBoundStopsAPassThatNeverSettles() {
        let report = GraphOptimizer.optimizeReport(graph(), passes: [Restless.self], maxRounds: 3)
        #expect(report.rounds == 3)
        #expect(!report.reachedFixedPoint)
        #expect(report.applied == ["restless", "restless", "restless"])
    }

    @Test func theStandardListSettlesOnATorchStyleGraph() throws {
        // Shape chains, repeated Constants and a transpose pair: everything the standard passes
        // touch, verified after each, reaching a fixed point.
        let one = Tensor(shape: [1], scalars: [Int64(1)])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(4)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [
            Node(opType: "Constant", inputs: [], outputs: ["k1"], attributes: [Attribute(name: "value", value: .tensor(one))]),
            Node(opType: "Constant", inputs: [], outputs: ["k2"], attributes: [Attribute(name: "value", value: .tensor(one))]),
            Node(opType: "Shape", inputs: ["x"], outputs: ["s"]),
            Node(opType: "Slice", inputs: ["s", "k1", "k2"], outputs: ["empty"]),
            Node(opType: "Transpose", inputs: ["x"], outputs: ["t"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "Relu", inputs: ["t"], outputs: ["r"]),
            Node(opType: "Transpose", inputs: ["r"], outputs: ["u"], attributes: [Attribute(name: "perm", value: .ints([1, 0]))]),
            Node(opType: "Identity", inputs: ["u"], outputs: ["y"]),
        ])
        let (out, applied) = try GraphOptimizer.optimizeStrict(g)
        #expect(applied.contains("constant-folding"))
        #expect(applied.contains("sink-transposes"))
        #expect(out.nodes.map(\.opType) == ["Relu", "Identity"])
        var check = out
        try check.verifyAndSort()
    }
}
