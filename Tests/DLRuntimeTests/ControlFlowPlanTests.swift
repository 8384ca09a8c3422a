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

    /// Ifs nested 40 deep, each then-branch holding the next If: building the executors is
    /// linear in the depth (the node-by-node run's subgraph executors were once made next to the
    /// plan's at every level, 2^depth in all: a fuzzed .ckpt 14 deep took 15 s and 3 GB).
    @Test func deeplyNestedIfsBuildAndRunAtEveryDepth() throws {
        func constant(_ name: String, _ v: Float) -> Node {
            Node(opType: "Constant", inputs: [], outputs: [name], attributes: [Attribute(name: "value", value: .tensor(Tensor(scalar: v)))])
        }
        let depth = 40
        var inner = Graph(name: "leaf", inputs: [], outputs: [ValueInfo(name: "o\(depth)", type: nil)], nodes: [constant("o\(depth)", 7)])
        for level in stride(from: depth - 1, through: 0, by: -1) {
            let elseG = Graph(name: "else\(level)", inputs: [], outputs: [ValueInfo(name: "e\(level)", type: nil)],
                              nodes: [constant("e\(level)", Float(level))])
            let node = Node(opType: "If", inputs: ["c"], outputs: ["o\(level)"],
                            attributes: [Attribute(name: "then_branch", value: .graph(inner)), Attribute(name: "else_branch", value: .graph(elseG))])
            inner = Graph(name: "then\(level)", inputs: [], outputs: [ValueInfo(name: "o\(level)", type: nil)], nodes: [node])
        }
        var g = inner
        g.inputs = [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: []))]
        g.metadata.opsetImports = [("", 17)]
        for options in [RuntimeOptions.default, RuntimeOptions(plans: false)] {
            let ex = try Executor(graph: g, options: options)
            #expect(try ex.run(["c": Tensor(scalar: true)])["o0"]?.scalars(as: Float.self) == [7])
            #expect(try ex.run(["c": Tensor(scalar: false)])["o0"]?.scalars(as: Float.self) == [0])
        }
    }

    /// Steps after an If on data are typed at run time, and a step's types are reused only
    /// while its inputs' shapes and small integer values stay the same: here the branches give
    /// different shapes and a Reshape's target changes its values but not its shape.
    @Test func stepsTypedAtRunTimeFollowTheirInputs() throws {
        let thenG = Graph(name: "then", inputs: [], outputs: [ValueInfo(name: "t", type: nil)],
                          nodes: [Node(opType: "Identity", inputs: ["x"], outputs: ["t"])])
        let elseG = Graph(name: "else", inputs: [], outputs: [ValueInfo(name: "e", type: nil)],
                          nodes: [Node(opType: "Reshape", inputs: ["x", "to32"], outputs: ["e"])])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: [])),
                                          ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [2, 3])),
                                          ValueInfo(name: "s", type: TensorType(dtype: .int64, shape: [2]))],
                      outputs: [ValueInfo(name: "out", type: nil)],
                      nodes: [Node(opType: "If", inputs: ["c"], outputs: ["y"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(thenG)),
                                                Attribute(name: "else_branch", value: .graph(elseG))]),
                              Node(opType: "Reshape", inputs: ["y", "s"], outputs: ["z"]),
                              Node(opType: "Relu", inputs: ["z"], outputs: ["out"])],
                      initializers: NamedTensors([("to32", Tensor(shape: [2], scalars: [Int64(3), 2]))]))
        g.metadata.opsetImports = [("", 17)]
        let planned = try Executor(graph: g)
        let unplanned = try Executor(graph: g, options: RuntimeOptions(plans: false))
        let x = Tensor(shape: [2, 3], scalars: [Float(-1), 2, -3, 4, 5, -6])
        let runs: [(Bool, [Int64])] = [(true, [1, 6]), (false, [1, 6]), (false, [6, 1]), (true, [3, 2]), (true, [3, 2]), (false, [2, 3])]
        for (c, target) in runs {
            let inputs = ["c": Tensor(scalar: c), "x": x, "s": Tensor(shape: [2], scalars: target)]
            let want = try #require(try unplanned.run(inputs)["out"])
            let (_, got) = try #require(try planned.planRunStats(inputs), "the graph ran unplanned")
            #expect(got["out"]?.shape == target.map { Int($0) })
            #expect(got["out"]?.shape == want.shape)
            #expect(got["out"]?.scalars(as: Float.self) == want.scalars(as: Float.self))
        }
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

    /// A branch that builds a tensor from the main graph's constants (silero-vad rearranges its
    /// LSTM weights so) gets them as initializers, and its passes fold that work away.
    @Test func branchesFoldWhatTheyComputeFromEnclosingConstants() throws {
        let thenG = Graph(name: "then", inputs: [], outputs: [ValueInfo(name: "t", type: nil)],
                          nodes: [Node(opType: "Concat", inputs: ["k2", "k2"], outputs: ["kk"], attributes: [Attribute(name: "axis", value: .int(0))]),
                                  Node(opType: "Mul", inputs: ["x", "kk"], outputs: ["t"])])
        let elseG = Graph(name: "else", inputs: [], outputs: [ValueInfo(name: "e", type: nil)],
                          nodes: [Node(opType: "Neg", inputs: ["x"], outputs: ["e"])])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: [])),
                                          ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [4]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "If", inputs: ["c"], outputs: ["y"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(thenG)),
                                                Attribute(name: "else_branch", value: .graph(elseG))])],
                      initializers: NamedTensors([("k2", Tensor(shape: [2], scalars: [Float(2), 3]))]))
        g.metadata.opsetImports = [("", 17)]
        let ex = try Executor(graph: g)
        let x = Tensor(shape: [4], scalars: [Float(1), 2, 3, 4])
        #expect(try ex.run(["c": Tensor(scalar: true), "x": x])["y"]?.scalars(as: Float.self) == [2, 6, 6, 12])
        #expect(try ex.run(["c": Tensor(scalar: false), "x": x])["y"]?.scalars(as: Float.self) == [-1, -2, -3, -4])
        let branch = try #require(ex.plannedSubgraphs[0]?["then_branch"]?.first)
        #expect(branch.planned.nodes.map(\.opType) == ["Mul"], "\(branch.planned.nodes.map(\.opType))")
    }

    /// silero-vad's pattern: an If on a shape (here: is the batch 1?), nested in another on a
    /// shape. A plan knows both conditions, so it runs the branches inline, with no If step,
    /// and each batch size gets its own branch.
    @Test func ifsOnShapesAreInlinedByThePlan() throws {
        func condition(_ name: String, on x: String, equals k: Int64) -> [Node] {
            [Node(opType: "Shape", inputs: [x], outputs: ["\(name).shape"]),
             Node(opType: "Gather", inputs: ["\(name).shape", "zero"], outputs: ["\(name).n"], attributes: [Attribute(name: "axis", value: .int(0))]),
             Node(opType: "Equal", inputs: ["\(name).n", k == 1 ? "one" : "two"], outputs: [name])]
        }
        let innerThen = Graph(name: "it", inputs: [], outputs: [ValueInfo(name: "it.y", type: nil)],
                              nodes: [Node(opType: "Mul", inputs: ["x", "k"], outputs: ["it.y"])])
        let innerElse = Graph(name: "ie", inputs: [], outputs: [ValueInfo(name: "ie.y", type: nil)],
                              nodes: [Node(opType: "Add", inputs: ["x", "k"], outputs: ["ie.y"])])
        let outerThen = Graph(name: "ot", inputs: [], outputs: [ValueInfo(name: "ot.y", type: nil)],
                              nodes: condition("c2", on: "x", equals: 1) + [
                                  Node(opType: "If", inputs: ["c2"], outputs: ["ot.y"],
                                       attributes: [Attribute(name: "then_branch", value: .graph(innerThen)),
                                                    Attribute(name: "else_branch", value: .graph(innerElse))])])
        let outerElse = Graph(name: "oe", inputs: [], outputs: [ValueInfo(name: "oe.y", type: nil)],
                              nodes: [Node(opType: "Neg", inputs: ["x"], outputs: ["oe.y"])])
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("N"), .fixed(2)]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: condition("c1", on: "x", equals: 2).map { n in
                          var n = n
                          if n.opType == "Equal" { n.inputs[1] = "two" }
                          return n
                      } + [Node(opType: "Not", inputs: ["c1"], outputs: ["small"]),
                           Node(opType: "If", inputs: ["small"], outputs: ["r"],
                                attributes: [Attribute(name: "then_branch", value: .graph(outerThen)),
                                             Attribute(name: "else_branch", value: .graph(outerElse))]),
                           Node(opType: "Relu", inputs: ["r"], outputs: ["y"])],
                      initializers: NamedTensors([("zero", Tensor(scalar: Int64(0))), ("one", Tensor(shape: [1], scalars: [Int64(1)])),
                                                  ("two", Tensor(shape: [1], scalars: [Int64(2)])),
                                                  ("k", Tensor(shape: [2], scalars: [Float(3), -4]))]))
        g.metadata.opsetImports = [("", 17)]
        let planned = try Executor(graph: g)
        let unplanned = try Executor(graph: g, options: RuntimeOptions(plans: false))
        // Batch 1: x·k; batch 2: relu(-x); batch 3: x + k (outer then, inner else).
        for n in [1, 2, 3, 1] {
            let x = Tensor(shape: [n, 2], scalars: (0..<(2 * n)).map { Float($0) - 1.5 })
            let (stats, out) = try #require(try planned.planRunStats(["x": x]), "the graph ran unplanned")
            #expect(stats.controlFlowSteps == 0, "batch \(n): \(stats.controlFlowSteps) If steps left")
            #expect(out["y"]?.scalars(as: Float.self) == (try unplanned.run(["x": x])["y"]?.scalars(as: Float.self)))
        }
    }
}
