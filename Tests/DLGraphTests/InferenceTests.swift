import DLGraph
import DLTensor
import Testing

/// A one-node graph over inputs of the given types, its output typed by inference.
func inferOne(_ op: String, _ inputs: [TensorType], attributes: [Attribute] = [],
              constants: [Int: Tensor] = [:], outputs: Int = 1) throws -> [TensorType?] {
    var inits = NamedTensors()
    var infos: [ValueInfo] = []
    var names: [String] = []
    for (i, t) in inputs.enumerated() {
        let name = "in\(i)"
        names.append(name)
        if let c = constants[i] { inits[name] = c } else { infos.append(ValueInfo(name: name, type: t)) }
    }
    let outs = (0..<outputs).map { "out\($0)" }
    let g = Graph(name: "g", inputs: infos, outputs: outs.map { ValueInfo(name: $0, type: nil) },
                  nodes: [Node(opType: op, inputs: names, outputs: outs, attributes: attributes)],
                  initializers: inits)
    let types = try g.inferTypes()
    return outs.map { types[$0] }
}

func f32(_ dims: [Dim]) -> TensorType { TensorType(dtype: .float32, dims: dims) }
func f32(_ shape: [Int]) -> TensorType { TensorType(dtype: .float32, shape: shape) }

struct InferenceTests {
    /// LayerNormalization is typed statically (a plan then need not infer it per run): Y as X,
    /// Mean/InvStdDev reduced from `axis` on, in the stash type.
    @Test func layerNormalizationIsTypedStatically() throws {
        let x = f32([.symbolic("n"), .fixed(5), .fixed(8)])
        let out = try inferOne("LayerNormalization", [x, f32([8]), f32([8])], outputs: 3)
        #expect(out[0] == x)
        #expect(out[1] == f32([.symbolic("n"), .fixed(5), .fixed(1)]))
        let axis1 = try inferOne("LayerNormalization", [f32([2, 5, 8]), f32([5, 8])],
                                 attributes: [Attribute(name: "axis", value: .int(1))], outputs: 2)
        #expect(axis1[0] == f32([2, 5, 8]))
        #expect(axis1[1] == f32([2, 1, 1]))
    }

    @Test func broadcastingKeepsSymbolicBatch() throws {
        let out = try inferOne("Add", [f32([.symbolic("batch"), .fixed(3)]), f32([3])])
        #expect(out[0] == f32([.symbolic("batch"), .fixed(3)]))
    }

    @Test func broadcastingRefusesClashingSizes() {
        #expect(throws: GraphError.self) { try inferOne("Mul", [f32([2, 3]), f32([4])]) }
    }

    @Test func gemmHonoursTransposeFlags() throws {
        let out = try inferOne("Gemm", [f32([.symbolic("n"), .fixed(784)]), f32([512, 784]), f32([512])],
                               attributes: [Attribute(name: "transB", value: .int(1))])
        #expect(out[0] == f32([.symbolic("n"), .fixed(512)]))
    }

    @Test func gemmRefusesMismatchedInnerSizes() {
        #expect(throws: GraphError.self) { try inferOne("Gemm", [f32([2, 3]), f32([4, 5])]) }
    }

    @Test(arguments: [
        ([2, 3, 4], [4, 5], [2, 3, 5]),
        ([4], [4, 5], [5]),
        ([3, 4], [4], [3]),
        ([1, 2, 3, 4], [2, 4, 6], [1, 2, 3, 6]),
        ([5, 1, 3, 4], [2, 4, 6], [5, 2, 3, 6]),
    ])
    func matmulFollowsNumpyRules(_ a: [Int], _ b: [Int], _ expected: [Int]) throws {
        let out = try inferOne("MatMul", [f32(a), f32(b)])
        #expect(out[0] == f32(expected))
    }

    @Test func convComputesPaddedStridedDilatedSizes() throws {
        let attrs = [Attribute(name: "pads", value: .ints([1, 2, 1, 2])), Attribute(name: "strides", value: .ints([2, 1])),
                     Attribute(name: "dilations", value: .ints([1, 2]))]
        let out = try inferOne("Conv", [f32([1, 3, 9, 10]), f32([8, 3, 3, 3])], attributes: attrs)
        // H: (9 + 2 - 3) / 2 + 1 = 5; W: (10 + 4 - 5) / 1 + 1 = 10
        #expect(out[0] == f32([1, 8, 5, 10]))
    }

    @Test func convSameUpperKeepsSizeOverStride() throws {
        let out = try inferOne("Conv", [f32([1, 3, 7, 7]), f32([4, 3, 3, 3])],
                               attributes: [Attribute(name: "auto_pad", value: .string("SAME_UPPER")),
                                            Attribute(name: "strides", value: .ints([2, 2]))])
        #expect(out[0] == f32([1, 4, 4, 4]))
    }

    @Test func convRefusesChannelMismatchWithGroups() {
        #expect(throws: GraphError.self) {
            try inferOne("Conv", [f32([1, 6, 5, 5]), f32([4, 2, 3, 3])], attributes: [Attribute(name: "group", value: .int(2))])
        }
    }

    @Test func poolCeilModeDropsAWindowStartingInPadding() throws {
        // in 5, k 2, s 2, ceil: ceil(3/2)+1 = 3 windows, the last starts at 4 < 5: kept.
        let a = try inferOne("MaxPool", [f32([1, 1, 5, 5])],
                             attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2])),
                                          Attribute(name: "ceil_mode", value: .int(1))])
        #expect(a[0] == f32([1, 1, 3, 3]))
        // in 4, pad end 1, k 2, s 2, ceil: span 3 -> 3 windows, the last starts at 4 >= 4: dropped.
        let b = try inferOne("AveragePool", [f32([1, 1, 4, 4])],
                             attributes: [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "strides", value: .ints([2, 2])),
                                          Attribute(name: "pads", value: .ints([0, 0, 1, 1])), Attribute(name: "ceil_mode", value: .int(1))])
        #expect(b[0] == f32([1, 1, 2, 2]))
    }

    @Test func reshapeResolvesZeroAndMinusOne() throws {
        let shape = Tensor(shape: [3], scalars: [Int64](arrayLiteral: 0, -1, 2))
        let out = try inferOne("Reshape", [f32([2, 3, 4]), TensorType(dtype: .int64, shape: [3])], constants: [1: shape])
        #expect(out[0] == f32([2, 6, 2]))
    }

    @Test func reshapeRefusesWrongElementCount() {
        let shape = Tensor(shape: [2], scalars: [Int64](arrayLiteral: 5, 5))
        #expect(throws: GraphError.self) {
            try inferOne("Reshape", [f32([2, 3]), TensorType(dtype: .int64, shape: [2])], constants: [1: shape])
        }
    }

    @Test func flattenConcatTransposeShapes() throws {
        #expect(try inferOne("Flatten", [f32([2, 3, 4, 5])], attributes: [Attribute(name: "axis", value: .int(2))])[0] == f32([6, 20]))
        #expect(try inferOne("Concat", [f32([2, 3]), f32([2, 5])], attributes: [Attribute(name: "axis", value: .int(-1))])[0] == f32([2, 8]))
        #expect(try inferOne("Transpose", [f32([2, 3, 4])], attributes: [Attribute(name: "perm", value: .ints([1, 2, 0]))])[0] == f32([3, 4, 2]))
        #expect(try inferOne("Transpose", [f32([2, 3, 4])])[0] == f32([4, 3, 2]))
    }

    @Test func concatRequiresItsAxis() {
        #expect(throws: GraphError.self) { try inferOne("Concat", [f32([2, 3]), f32([2, 5])]) }
    }

    @Test func constantTakesItsTypeFromTheValue() throws {
        let out = try inferOne("Constant", [], attributes: [Attribute(name: "value_ints", value: .ints([1, 2, 3]))])
        #expect(out[0] == TensorType(dtype: .int64, shape: [3]))
    }

    @Test func attributeOfWrongKindIsNamed() {
        do {
            _ = try inferOne("Softmax", [f32([2, 3])], attributes: [Attribute(name: "axis", value: .string("x"))])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("attribute 'axis' should be int but is string"))
        }
    }
}

struct VerifyTests {
    func relu(_ input: String, _ output: String) -> Node { Node(opType: "Relu", inputs: [input], outputs: [output]) }

    @Test func nodesListedOutOfOrderAreSorted() throws {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: f32([1]))], outputs: [ValueInfo(name: "z", type: nil)],
                      nodes: [relu("y", "z"), relu("x", "y")])
        try g.verifyAndSort()
        #expect(g.nodes.map { $0.outputs[0] } == ["y", "z"])
    }

    @Test func undefinedInputIsNamed() {
        var g = Graph(name: "g", inputs: [], outputs: [ValueInfo(name: "z", type: nil)], nodes: [relu("nowhere", "z")])
        #expect(throws: GraphError.undefinedValue(node: "Relu -> 'z'", value: "nowhere")) { try g.verifyAndSort() }
    }

    @Test func cycleIsReported() {
        var g = Graph(name: "g", inputs: [], outputs: [ValueInfo(name: "a", type: nil)], nodes: [relu("b", "a"), relu("a", "b")])
        #expect(throws: GraphError.self) { try g.verifyAndSort() }
    }

    @Test func valueDefinedTwiceIsRefused() {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: nil)], outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [relu("x", "y"), relu("x", "y")])
        #expect(throws: GraphError.duplicateValue("y")) { try g.verifyAndSort() }
    }

    @Test func unsupportedOpsAreListedTogetherWithCounts() {
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: nil)], outputs: [],
                      nodes: [Node(opType: "FancyLSTM", inputs: ["x"], outputs: ["a"]), Node(opType: "FancyLSTM", inputs: ["a"], outputs: ["b"]),
                              Node(opType: "FancyEinsum", inputs: ["b"], outputs: ["c"]), relu("c", "d")])
        #expect(GraphError.unsupportedOps(g.unsupportedOps).description == "unsupported ops: FancyEinsum, FancyLSTM (x2)")
    }
}
