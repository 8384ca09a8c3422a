import DLGraph
import DLRuntime
import DLTensor
import Testing

/// Control flow with outer-scope reads, and sequence/optional values through the executor.
struct FlowTests {
    func scalarF(_ v: Float) -> Tensor { Tensor(scalar: v) }

    @Test func ifBranchesReadOuterScopeValues() throws {
        // y = cond ? (a + b) : a, where a and b are defined in the main graph only.
        let thenG = Graph(name: "then", inputs: [], outputs: [ValueInfo(name: "s", type: nil)],
                          nodes: [Node(opType: "Add", inputs: ["a", "b"], outputs: ["s"])])
        let elseG = Graph(name: "else", inputs: [], outputs: [ValueInfo(name: "a2", type: nil)],
                          nodes: [Node(opType: "Identity", inputs: ["a"], outputs: ["a2"])])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: TensorType(dtype: .bool, shape: [])),
                                          ValueInfo(name: "a", type: nil)],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "If", inputs: ["c"], outputs: ["y"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(thenG)),
                                                Attribute(name: "else_branch", value: .graph(elseG))])],
                      initializers: NamedTensors([("b", scalarF(10))]))
        let ex = try Executor(graph: g)
        #expect(try ex.run(["c": Tensor(scalar: true), "a": scalarF(1)])["y"]?.scalars(as: Float.self) == [11])
        #expect(try ex.run(["c": Tensor(scalar: false), "a": scalarF(1)])["y"]?.scalars(as: Float.self) == [1])
    }

    @Test func loopCarriesStateAndStacksScanOutputs() throws {
        // body(i, cond, acc) -> (cond, acc + step, acc + step); step comes from the outer scope.
        let body = Graph(name: "body",
                         inputs: [ValueInfo(name: "i", type: nil), ValueInfo(name: "cin", type: nil), ValueInfo(name: "acc", type: nil)],
                         outputs: [ValueInfo(name: "cout", type: nil), ValueInfo(name: "acc2", type: nil), ValueInfo(name: "scan", type: nil)],
                         nodes: [Node(opType: "Identity", inputs: ["cin"], outputs: ["cout"]),
                                 Node(opType: "Add", inputs: ["acc", "step"], outputs: ["acc2"]),
                                 Node(opType: "Identity", inputs: ["acc2"], outputs: ["scan"])])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "n", type: nil), ValueInfo(name: "step", type: nil)],
                      outputs: [ValueInfo(name: "final", type: nil), ValueInfo(name: "all", type: nil)],
                      nodes: [Node(opType: "Loop", inputs: ["n", "", "init"], outputs: ["final", "all"],
                                   attributes: [Attribute(name: "body", value: .graph(body))])],
                      initializers: NamedTensors([("init", f32([1], [0]))]))
        let out = try Executor(graph: g).run(["n": Tensor(scalar: Int64(3)), "step": f32([1], [2])])
        #expect(out["final"]?.scalars(as: Float.self) == [6])
        #expect(out["all"]?.shape == [3, 1])
        #expect(out["all"]?.scalars(as: Float.self) == [2, 4, 6])
    }

    @Test func subgraphReadingAnUndefinedNameFailsAtBuild() {
        let body = Graph(name: "then", inputs: [], outputs: [ValueInfo(name: "s", type: nil)],
                         nodes: [Node(opType: "Identity", inputs: ["nowhere"], outputs: ["s"])])
        let g = Graph(name: "g", inputs: [ValueInfo(name: "c", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "If", inputs: ["c"], outputs: ["y"],
                                   attributes: [Attribute(name: "then_branch", value: .graph(body)),
                                                Attribute(name: "else_branch", value: .graph(body))])])
        do {
            _ = try Executor(graph: g)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("nowhere"))
        }
    }

    @Test func sequencesAndOptionalsFlowThroughRunValues() throws {
        let g = Graph(name: "g", inputs: [ValueInfo(name: "s", container: .sequence(.tensor(nil))), ValueInfo(name: "t", type: nil)],
                      outputs: [ValueInfo(name: "joined", type: nil), ValueInfo(name: "len", type: nil),
                                ValueInfo(name: "has", type: nil), ValueInfo(name: "opt", container: .optional(.tensor(nil)))],
                      nodes: [Node(opType: "SequenceInsert", inputs: ["s", "t"], outputs: ["s2"]),
                              Node(opType: "ConcatFromSequence", inputs: ["s2"], outputs: ["joined"],
                                   attributes: [Attribute(name: "axis", value: .int(0))]),
                              Node(opType: "SequenceLength", inputs: ["s2"], outputs: ["len"]),
                              Node(opType: "Optional", inputs: [""], outputs: ["opt"],
                                   attributes: [Attribute(name: "type", value: .type(.tensor(nil)))]),
                              Node(opType: "OptionalHasElement", inputs: ["opt"], outputs: ["has"])])
        let out = try Executor(graph: g).runValues(["s": .sequence([.tensor(f32([2], [1, 2]))]), "t": .tensor(f32([1], [3]))])
        #expect(out["joined"]?.tensor?.scalars(as: Float.self) == [1, 2, 3])
        #expect(out["len"]?.tensor?.scalars(as: Int64.self) == [2])
        #expect(out["has"]?.tensor?.scalars(as: Bool.self) == [false])
        guard case .optional(nil)? = out["opt"] else { Issue.record("expected an empty optional"); return }
    }

    @Test func sequenceAtRejectsAPositionOutOfRange() throws {
        let g = Graph(name: "g", inputs: [ValueInfo(name: "s", container: .sequence(.tensor(nil))), ValueInfo(name: "p", type: nil)],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(opType: "SequenceAt", inputs: ["s", "p"], outputs: ["y"])])
        do {
            _ = try Executor(graph: g).runValues(["s": .sequence([.tensor(f32([1], [1]))]), "p": .tensor(Tensor(scalar: Int64(5)))])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("position 5"))
        }
    }
}
