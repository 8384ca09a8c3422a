import DLAutograd
import DLGraph
import DLKernels
import DLTensor
import Testing

/// Each gradient rule against central finite differences on a one- or two-node graph.
struct GradientRuleTests {
    static func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        var rng = TrainingRNG(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in (rng.nextUnitFloat() * 2 - 1) * scale + offset })
    }

    static func graph(_ nodes: [Node], inputs: [String: Tensor], initializers: [String: Tensor] = [:], outputs: [String]) -> Graph {
        var inits = NamedTensors()
        for (k, v) in initializers.sorted(by: { $0.key < $1.key }) { inits[k] = v }
        var g = Graph(name: "check",
                      inputs: inputs.keys.sorted().map { ValueInfo(name: $0, type: TensorType(dtype: inputs[$0]!.dtype, shape: inputs[$0]!.shape)) },
                      outputs: outputs.map { ValueInfo(name: $0, type: nil) }, nodes: nodes, initializers: inits)
        g.metadata.opsetImports = [(domain: "", version: 17)]
        return g
    }

    static func check(_ nodes: [Node], inputs: [String: Tensor], initializers: [String: Tensor] = [:], outputs: [String] = ["y"],
                      wrt: [String]? = nil, tolerance: Double = 2e-2, epsilon: Float = 1e-2, training: Bool = false) throws {
        let g = graph(nodes, inputs: inputs, initializers: initializers, outputs: outputs)
        let names = wrt ?? (inputs.keys.sorted() + initializers.keys.sorted())
        let r = try GradientCheck.run(graph: g, inputs: inputs, wrt: names, epsilon: epsilon, training: training)
        #expect(r.maxError < tolerance, "\(nodes.map(\.opType)): \(r.worst)")
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String] = ["y"], _ attrs: [Attribute] = []) -> Node {
        Node(name: op.lowercased(), opType: op, inputs: inputs, outputs: outputs, attributes: attrs)
    }
}

extension GradientRuleTests {
    typealias T = GradientRuleTests

    @Test func gemmAllTranspositions() throws {
        for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let a = T.randomTensor(ta == 1 ? [4, 3] : [3, 4], seed: 1)
            let b = T.randomTensor(tb == 1 ? [5, 4] : [4, 5], seed: 2)
            let c = T.randomTensor([5], seed: 3)
            try T.check([T.node("Gemm", ["a", "b", "c"], ["y"], [Attribute(name: "transA", value: .int(ta)), Attribute(name: "transB", value: .int(tb)),
                                                              Attribute(name: "alpha", value: .float(0.7)), Attribute(name: "beta", value: .float(1.3))])],
                        inputs: ["a": a], initializers: ["b": b, "c": c])
        }
    }

    @Test func matmulBatchedAndBroadcast() throws {
        try T.check([T.node("MatMul", ["a", "b"])], inputs: ["a": T.randomTensor([2, 3, 4], seed: 4)], initializers: ["b": T.randomTensor([4, 2], seed: 5)])
        try T.check([T.node("MatMul", ["a", "b"])], inputs: ["a": T.randomTensor([4], seed: 6)], initializers: ["b": T.randomTensor([2, 4, 3], seed: 7)])
    }

    @Test func convolutionGroupsStridesDilationsPads() throws {
        let attrs: [Attribute] = [Attribute(name: "group", value: .int(2)), Attribute(name: "strides", value: .ints([2, 1])),
                                  Attribute(name: "dilations", value: .ints([1, 2])), Attribute(name: "pads", value: .ints([1, 0, 1, 2]))]
        try T.check([T.node("Conv", ["x", "w", "b"], ["y"], attrs)], inputs: ["x": T.randomTensor([2, 4, 5, 6], seed: 8)],
                    initializers: ["w": T.randomTensor([6, 2, 3, 2], seed: 9), "b": T.randomTensor([6], seed: 10)])
        try T.check([T.node("Conv", ["x", "w"], ["y"], [Attribute(name: "auto_pad", value: .string("SAME_UPPER"))])],
                    inputs: ["x": T.randomTensor([1, 2, 7], seed: 11)], initializers: ["w": T.randomTensor([3, 2, 4], seed: 12)])
    }

    /// The convolution's gradient splits the batch over the workers, each part summing its own
    /// weight gradient: the input gradient (each image's own) is the same bits on one worker or
    /// two, the weight gradient is close to one worker's and the same bits run after run.
    @Test func convolutionGradientOverTwoWorkers() throws {
        let x = T.randomTensor([4, 8, 16, 16], seed: 21)
        let pads = Attribute(name: "pads", value: .ints([1, 1, 1, 1]))
        let g = T.graph([T.node("Conv", ["x", "w", "b"], ["c"], [pads]), T.node("Relu", ["c"], ["y"])], inputs: ["x": x],
                        initializers: ["w": T.randomTensor([16, 8, 3, 3], seed: 22), "b": T.randomTensor([16], seed: 23)], outputs: ["y"])
        let d = try Differentiator(graph: g, wrt: ["x", "w", "b"])
        let seed = T.randomTensor([4, 16, 16, 16], seed: 24)
        func gradients(workers: Int) throws -> [String: Tensor] {
            try ParallelFor.withWorkerCount(workers) { () throws(AutogradError) -> [String: Tensor] in
                var rng = TrainingRNG(seed: 0)
                return try d.backward(try d.forward(["x": x], rng: &rng), seeds: ["y": seed])
            }
        }
        let one = try gradients(workers: 1), two = try gradients(workers: 2), again = try gradients(workers: 2)
        let zero = Tensor(scalar: Float(0))
        #expect(two["x"]?.bitwiseEqual(one["x"] ?? zero) == true)
        #expect(two["w"]?.bitwiseEqual(again["w"] ?? zero) == true)
        let a = (one["w"] ?? zero).scalars(as: Float.self), b = (two["w"] ?? zero).scalars(as: Float.self)
        #expect(a.count == 16 * 8 * 9 && a.count == b.count)
        for (u, v) in zip(a, b) { #expect(abs(u - v) <= 1e-5 * max(1, abs(u)), "\(u) \(v)") }
    }

    @Test func pooling() throws {
        let x = T.randomTensor([2, 2, 5, 5], seed: 13)
        let attrs: [Attribute] = [Attribute(name: "kernel_shape", value: .ints([3, 2])), Attribute(name: "strides", value: .ints([2, 2])),
                                  Attribute(name: "pads", value: .ints([1, 0, 1, 1]))]
        try T.check([T.node("MaxPool", ["x"], ["y"], attrs)], inputs: ["x": x], epsilon: 1e-3)
        try T.check([T.node("AveragePool", ["x"], ["y"], attrs)], inputs: ["x": x])
        try T.check([T.node("AveragePool", ["x"], ["y"], attrs + [Attribute(name: "count_include_pad", value: .int(1))])], inputs: ["x": x])
        try T.check([T.node("GlobalAveragePool", ["x"])], inputs: ["x": x])
    }

    @Test func activations() throws {
        let x = T.randomTensor([3, 5], seed: 14, scale: 2)
        for op in ["Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Gelu", "Softplus", "Neg", "Identity", "Erf", "Exp", "Abs"] {
            try T.check([T.node(op, ["x"])], inputs: ["x": x], epsilon: 1e-3)
        }
        try T.check([T.node("Gelu", ["x"], ["y"], [Attribute(name: "approximate", value: .string("tanh"))])], inputs: ["x": x], epsilon: 1e-3)
        let positive = T.randomTensor([3, 5], seed: 15, scale: 1, offset: 2)
        for op in ["Log", "Sqrt", "Reciprocal"] { try T.check([T.node(op, ["x"])], inputs: ["x": positive], epsilon: 1e-3) }
        for (op, axis) in [("Softmax", 1), ("LogSoftmax", -1), ("Softmax", 0)] {
            try T.check([T.node(op, ["x"], ["y"], [Attribute(name: "axis", value: .int(axis))])], inputs: ["x": x], epsilon: 1e-3)
        }
    }

    @Test func broadcastingBinary() throws {
        let a = T.randomTensor([2, 3, 4], seed: 16), b = T.randomTensor([3, 1], seed: 17, scale: 1, offset: 2)
        for op in ["Add", "Sub", "Mul", "Div"] { try T.check([T.node(op, ["a", "b"])], inputs: ["a": a], initializers: ["b": b], epsilon: 1e-3) }
        try T.check([T.node("Pow", ["b", "e"])], inputs: ["b": b], initializers: ["e": Tensor(shape: [], scalars: [Float(1.7)])], epsilon: 1e-3)
    }

    @Test func movement() throws {
        let x = T.randomTensor([2, 3, 4], seed: 18)
        try T.check([T.node("Transpose", ["x"], ["y"], [Attribute(name: "perm", value: .ints([2, 0, 1]))])], inputs: ["x": x])
        try T.check([T.node("Reshape", ["x", "s"])], inputs: ["x": x], initializers: ["s": Tensor(shape: [2], scalars: [Int64(4), 6])], wrt: ["x"])
        try T.check([T.node("Flatten", ["x"], ["y"], [Attribute(name: "axis", value: .int(2))])], inputs: ["x": x])
        try T.check([T.node("Concat", ["x", "z"], ["y"], [Attribute(name: "axis", value: .int(1))])], inputs: ["x": x],
                    initializers: ["z": T.randomTensor([2, 2, 4], seed: 19)])
        try T.check([T.node("Split", ["x", "sp"], ["y", "y2"], [Attribute(name: "axis", value: .int(2))])], inputs: ["x": x],
                    initializers: ["sp": Tensor(shape: [2], scalars: [Int64(1), 3])], outputs: ["y", "y2"], wrt: ["x"])
        try T.check([T.node("Slice", ["x", "st", "en", "ax", "sp"])], inputs: ["x": x],
                    initializers: ["st": Tensor(shape: [2], scalars: [Int64(1), -1]), "en": Tensor(shape: [2], scalars: [Int64(3), -5]),
                                   "ax": Tensor(shape: [2], scalars: [Int64(1), 2]), "sp": Tensor(shape: [2], scalars: [Int64(1), -2])], wrt: ["x"])
        // Unit steps (pasted as a box), one of them with a negative start and no steps given.
        try T.check([T.node("Slice", ["x", "st", "en", "ax", "sp"])], inputs: ["x": x],
                    initializers: ["st": Tensor(shape: [2], scalars: [Int64(1), 1]), "en": Tensor(shape: [2], scalars: [Int64(3), 3]),
                                   "ax": Tensor(shape: [2], scalars: [Int64(1), 2]), "sp": Tensor(shape: [2], scalars: [Int64(1), 1])], wrt: ["x"])
        try T.check([T.node("Slice", ["x", "st", "en", "ax"])], inputs: ["x": x],
                    initializers: ["st": Tensor(shape: [1], scalars: [Int64(-3)]), "en": Tensor(shape: [1], scalars: [Int64(100)]),
                                   "ax": Tensor(shape: [1], scalars: [Int64(2)])], wrt: ["x"])
        try T.check([T.node("Gather", ["w", "i"])], inputs: ["i": Tensor(shape: [2, 2], scalars: [Int64(1), 0, 1, -1])],
                    initializers: ["w": T.randomTensor([3, 4], seed: 20)], wrt: ["w"])
        try T.check([T.node("ReduceMean", ["x", "ax"], ["y"], [Attribute(name: "keepdims", value: .int(0))])], inputs: ["x": x],
                    initializers: ["ax": Tensor(shape: [1], scalars: [Int64(1)])], wrt: ["x"])
        try T.check([T.node("ReduceSum", ["x", "ax"])], inputs: ["x": x], initializers: ["ax": Tensor(shape: [2], scalars: [Int64(0), 2])], wrt: ["x"])
    }

    @Test func normalization() throws {
        let x = T.randomTensor([2, 3, 4], seed: 21, scale: 2)
        try T.check([T.node("LayerNormalization", ["x", "s", "b"], ["y"], [Attribute(name: "axis", value: .int(-1))])], inputs: ["x": x],
                    initializers: ["s": T.randomTensor([4], seed: 22), "b": T.randomTensor([4], seed: 23)], epsilon: 1e-3)
        try T.check([T.node("BatchNormalization", ["x", "s", "b", "m", "v"])], inputs: ["x": x],
                    initializers: ["s": T.randomTensor([3], seed: 24), "b": T.randomTensor([3], seed: 25), "m": T.randomTensor([3], seed: 26),
                                   "v": T.randomTensor([3], seed: 27, scale: 0.5, offset: 1)], wrt: ["x", "s", "b"], epsilon: 1e-3)
        // Training mode: batch statistics, gradients through the mean and variance.
        try T.check([T.node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], [Attribute(name: "training_mode", value: .int(1))])],
                    inputs: ["x": x],
                    initializers: ["s": T.randomTensor([3], seed: 24), "b": T.randomTensor([3], seed: 25), "m": T.randomTensor([3], seed: 26),
                                   "v": T.randomTensor([3], seed: 27, scale: 0.5, offset: 1)], wrt: ["x", "s", "b"], epsilon: 1e-2, training: true)
        // Dropout with a seeded mask (the same mask in every forward of the check).
        try T.check([T.node("Dropout", ["x", "r"])], inputs: ["x": x], initializers: ["r": Tensor(scalar: Float(0.3))], wrt: ["x"], training: true)
    }
}

extension GradientRuleTests {
    /// In training the forward pass runs in the rule's own code and keeps the gates (`training:
    /// true`); otherwise the rule recomputes them. Both against finite differences.
    @Test(arguments: ["forward", "reverse", "bidirectional"], [false, true])
    func lstm(direction: String, training: Bool) throws {
        let (nodes, inits) = T_.lstm(direction: direction)
        try T_.check(nodes, inputs: ["x": T_.randomTensor([3, 2, 2], seed: 30)], initializers: inits,
                     outputs: ["y", "yh", "yc"], epsilon: 1e-2, training: training)
        // X from the data (no gradient asked): the weights' gradients stay right without dX.
        try T_.check(nodes, inputs: ["x": T_.randomTensor([3, 2, 2], seed: 30)], initializers: inits,
                     outputs: ["y", "yh", "yc"], wrt: ["w", "r", "b"], epsilon: 1e-2, training: training)
    }

    /// 11 hidden units: the rule's and the training forward's eight-lane loops and their tails,
    /// against finite differences and against the runtime's forward pass.
    @Test(arguments: ["forward", "bidirectional"])
    func lstmWiderThanAVector(direction: String) throws {
        let (nodes, inits) = T_.lstm(direction: direction, hidden: 11)
        let x = T_.randomTensor([3, 2, 2], seed: 36)
        try T_.check(nodes, inputs: ["x": x], initializers: inits, outputs: ["y", "yh", "yc"], epsilon: 1e-2, training: true)
        let g = T_.graph(nodes, inputs: ["x": x], initializers: inits, outputs: ["y", "yh", "yc"])
        let diff = try Differentiator(graph: g, wrt: ["w"])
        var rng = TrainingRNG(seed: 1)
        let trained = try diff.forward(["x": x], training: true, rng: &rng), inferred = try diff.forward(["x": x], training: false, rng: &rng)
        for o in ["y", "yh", "yc"] {
            let a = try #require(trained.value(o)), b = try #require(inferred.value(o))
            let err = zip(a.doubles(), b.doubles()).map { abs($0 - $1) }.max() ?? 0
            #expect(a.shape == b.shape && err < 1e-6, "\(direction) \(o): \(err)")
        }
    }

    @Test(arguments: ["forward", "reverse", "bidirectional"], [0, 1])
    func gru(direction: String, linearBeforeReset: Int) throws {
        let (nodes, inits) = T_.gru(direction: direction, linearBeforeReset: linearBeforeReset)
        for training in [false, true] {
            try T_.check(nodes, inputs: ["x": T_.randomTensor([3, 2, 2], seed: 40)], initializers: inits,
                         outputs: ["y", "yh"], epsilon: 1e-2, training: training)
            try T_.check(nodes, inputs: ["x": T_.randomTensor([3, 2, 2], seed: 40)], initializers: inits,
                         outputs: ["y", "yh"], wrt: ["w", "r", "b"], epsilon: 1e-2, training: training)
        }
    }

    /// The training forward pass of LSTM and GRU gives the runtime's outputs.
    @Test func recurrentTrainingForwardMatchesTheRuntime() throws {
        var cases = ["forward", "reverse", "bidirectional"].map { (T_.lstm(direction: $0), ["y", "yh", "yc"]) }
        for d in ["forward", "reverse", "bidirectional"] {
            for lbr in [0, 1] { cases.append((T_.gru(direction: d, linearBeforeReset: lbr), ["y", "yh"])) }
        }
        for ((nodes, inits), outputs) in cases {
            let g = T_.graph(nodes, inputs: ["x": T_.randomTensor([3, 2, 2], seed: 50)], initializers: inits, outputs: outputs)
            let diff = try Differentiator(graph: g, wrt: ["w"])
            var rng = TrainingRNG(seed: 1)
            let feed = ["x": T_.randomTensor([3, 2, 2], seed: 50)]
            let trained = try diff.forward(feed, training: true, rng: &rng), inferred = try diff.forward(feed, training: false, rng: &rng)
            for o in outputs {
                let a = try #require(trained.value(o)), b = try #require(inferred.value(o))
                #expect(a.shape == b.shape, "\(nodes[0].attributes) \(o)")
                let err = zip(a.doubles(), b.doubles()).map { abs($0 - $1) }.max() ?? 0
                #expect(err < 1e-6, "\(nodes[0].opType) \(nodes[0].attributes) \(o): \(err)")
            }
        }
    }

    /// The LSTM's cell splits its batch rows over the workers in training, forward and back:
    /// outputs and gradients are the same bits on one worker or two (products too small to split).
    @Test func lstmTrainingOverTwoWorkers() throws {
        let (nodes, inits) = T_.lstm(direction: "bidirectional", hidden: 128, batch: 32)
        let x = T_.randomTensor([3, 32, 2], seed: 51)
        let g = T_.graph(nodes, inputs: ["x": x], initializers: inits, outputs: ["y", "yh", "yc"])
        let d = try Differentiator(graph: g, wrt: ["x", "w", "r", "b", "h0", "c0"])
        let seeds = ["y": T_.randomTensor([3, 2, 32, 128], seed: 52), "yc": T_.randomTensor([2, 32, 128], seed: 53)]
        func run(workers: Int) throws -> [String: Tensor] {
            try ParallelFor.withWorkerCount(workers) { () throws(AutogradError) -> [String: Tensor] in
                var rng = TrainingRNG(seed: 0)
                let tape = try d.forward(["x": x], training: true, rng: &rng)
                var out = try d.backward(tape, seeds: seeds)
                for o in ["y", "yh", "yc"] { out["out " + o] = tape.value(o) }
                return out
            }
        }
        let one = try run(workers: 1), two = try run(workers: 2)
        #expect(one.count == 9 && one.keys.sorted() == two.keys.sorted())
        for (name, t) in one { #expect(two[name]?.bitwiseEqual(t) == true, "\(name)") }
    }

    /// One LSTM node (H 3 unless given, I 2, N 2 unless given, T 3) with biases and initial states, and its initializers.
    static func lstm(direction: String, hidden H: Int = 3, batch N: Int = 2) -> ([Node], [String: Tensor]) {
        let dirs = direction == "bidirectional" ? 2 : 1, I = 2
        let attrs = [Attribute(name: "hidden_size", value: .int(H)), Attribute(name: "direction", value: .string(direction))]
        return ([T_.node("LSTM", ["x", "w", "r", "b", "", "h0", "c0"], ["y", "yh", "yc"], attrs)],
                ["w": T_.randomTensor([dirs, 4 * H, I], seed: 31), "r": T_.randomTensor([dirs, 4 * H, H], seed: 32),
                 "b": T_.randomTensor([dirs, 8 * H], seed: 33), "h0": T_.randomTensor([dirs, N, H], seed: 34),
                 "c0": T_.randomTensor([dirs, N, H], seed: 35)])
    }

    /// One GRU node (H 3, I 2, N 2, T 3) with biases and an initial state, and its initializers.
    static func gru(direction: String, linearBeforeReset: Int) -> ([Node], [String: Tensor]) {
        let dirs = direction == "bidirectional" ? 2 : 1, H = 3, I = 2, N = 2
        let attrs = [Attribute(name: "hidden_size", value: .int(H)), Attribute(name: "direction", value: .string(direction)),
                     Attribute(name: "linear_before_reset", value: .int(linearBeforeReset))]
        return ([T_.node("GRU", ["x", "w", "r", "b", "", "h0"], ["y", "yh"], attrs)],
                ["w": T_.randomTensor([dirs, 3 * H, I], seed: 41), "r": T_.randomTensor([dirs, 3 * H, H], seed: 42),
                 "b": T_.randomTensor([dirs, 6 * H], seed: 43), "h0": T_.randomTensor([dirs, N, H], seed: 44)])
    }
}

typealias T_ = GradientRuleTests
