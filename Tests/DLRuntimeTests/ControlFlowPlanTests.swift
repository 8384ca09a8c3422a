import DLGraph
@testable import DLRuntime
import DLTensor
import Testing

/// Graphs with If and Loop nodes run through execution plans: the control-flow node is a step
/// whose subgraphs read the enclosing values from the plan's slots.
struct ControlFlowPlanTests {
    /// r = Relu(x); y = c ? r * k : -r (the branches read r and k from the main graph); out = y + x.
    func ifGraph() -> Graph {
        let thenG = Graph(name: "then", inputs: [], outputs: [ValueInfo(name: "t", type: TensorType(dtype: .float32, shape: [2, 3]))],
                          nodes: [Node(opType: "Mul", inputs: ["r", "k"], outputs: ["t"])])
        let elseG = Graph(name: "else", inputs: [], outputs: [ValueInfo(name: "e", type: TensorType(dtype: .float32, shape: [2, 3]))],
                          nodes: [Node(opType: "Neg", inputs: ["r"], outputs: ["e"])])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: [])),
                                          ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2, 3]))],
                      outputs: [ValueInfo(name: "out", type: nil)],
                      nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["r"]),
                              Node(name: "branch", opType: "If", inputs: ["c"], outputs: ["y"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(thenG)),
                                                Attribute(name: "else_branch", value: .graph(elseG))]),
                              Node(opType: "Add", inputs: ["y", "x"], outputs: ["out"])],
                      initializers: NamedTensors([("k", Tensor(scalar: Float(3)))]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test func anIfRunsInsideThePlanAndMatchesTheUnplannedRun() throws {
        let planned = try Executor(graph: ifGraph())
        let unplanned = try Executor(graph: ifGraph(), options: RuntimeOptions(plans: false))
        let x = Tensor(shape: [2, 3], scalars: [Float(-1), 2, -3, 4, 0.5, -6])
        for c in [true, false] {
            let inputs = ["c": Tensor(scalar: c), "x": x]
            let (_, viaPlan) = try #require(try planned.planRunStats(inputs), "the graph ran unplanned")
            let want = try #require(try unplanned.run(inputs)["out"])
            #expect(viaPlan["out"]?.scalars(as: Float.self) == want.scalars(as: Float.self))
            #expect(try planned.run(inputs)["out"]?.scalars(as: Float.self) == want.scalars(as: Float.self))
        }
        // then: relu(x) * 3 + x; else: -relu(x) + x.
        #expect(try planned.run(["c": Tensor(scalar: true), "x": x])["out"]?.scalars(as: Float.self) == [-1, 8, -3, 16, 2, -6])
        #expect(try planned.run(["c": Tensor(scalar: false), "x": x])["out"]?.scalars(as: Float.self) == [-1, 0, -3, 0, 0, -6])
    }

    @Test func aSubgraphYieldingASequenceKeepsItsGraphUnplanned() throws {
        let body = Graph(name: "seq", inputs: [], outputs: [ValueInfo(name: "s", container: .sequence(.tensor(TensorType(dtype: .float32, shape: [1]))))],
                         nodes: [Node(opType: "SequenceConstruct", inputs: ["x"], outputs: ["s"])])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: [])),
                                          ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1]))],
                      outputs: [ValueInfo(name: "n", type: nil)],
                      nodes: [Node(opType: "If", inputs: ["c"], outputs: ["s"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(body)),
                                                Attribute(name: "else_branch", value: .graph(body))]),
                              Node(opType: "SequenceLength", inputs: ["s"], outputs: ["n"])])
        let ex = try Executor(graph: g)
        let out = try ex.runValues(["c": .tensor(Tensor(scalar: true)), "x": .tensor(Tensor(shape: [1], scalars: [Float(1)]))])
        #expect(out["n"]?.tensor?.scalars(as: Int64.self) == [1])
    }
}
