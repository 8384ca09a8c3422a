import DLGraph
import DLTensor
import Testing
@testable import DLRuntime

/// Steps a plan types once, when it is built: a step left untyped infers its output types on
/// every run, and so does every step after it (an 8-bit TFLite model's 127 steps did, behind its
/// first integer convolution).
@Suite struct PlanTypingTests {
    /// ConvInteger and its channels-last fusion are typed by their schemas: the inferred shape is
    /// the shape the kernel makes, over strides, dilations, uneven pads, groups and auto_pad.
    @Test func integerConvolutionsAreTypedAsTheKernelSizesThem() throws {
        let autoPadded = IntegerKernelTests.Conv(n: 1, c: 4, h: 7, w: 6, m: 8, kh: 3, kw: 2, stride: 2, padBegin: 0, padEnd: 0,
                                                 dilation: 1, group: 1)
        for (i, p) in (IntegerKernelTests.nhwcConvs.map { ($0, false) } + [(autoPadded, true)]).enumerated() {
            let (p, autoPad) = p
            var window: [Attribute] = [
                Attribute(name: "kernel_shape", value: .ints([p.kh, p.kw])), Attribute(name: "strides", value: .ints([p.stride, p.stride])),
                Attribute(name: "dilations", value: .ints([p.dilation, p.dilation])), Attribute(name: "group", value: .int(p.group)),
            ]
            window.append(autoPad ? Attribute(name: "auto_pad", value: .string("SAME_UPPER"))
                                  : Attribute(name: "pads", value: .ints([p.padBegin, p.padBegin, p.padEnd, p.padEnd])))
            let x = IntegerKernelTests.tensor(IntegerKernelTests.bytes(p.n * p.c * p.h * p.w, seed: UInt64(i)), signed: false, shape: [p.n, p.c, p.h, p.w])
            let w = IntegerKernelTests.tensor(IntegerKernelTests.bytes(p.m * (p.c / p.group) * p.kh * p.kw, seed: UInt64(50 + i)), signed: true,
                                              shape: [p.m, p.c / p.group, p.kh, p.kw])
            let conv = Node(name: "conv", opType: "ConvInteger", inputs: ["x", "w"], outputs: ["y"], attributes: window)
            let g = Graph(name: "conv", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .uint8, shape: x.shape))],
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: [conv], initializers: NamedTensors([("w", w)]))
            let y = try #require(try Executor(graph: g, options: RuntimeOptions(plans: false)).run(["x": x])["y"])
            let types = ["x": TensorType(dtype: .uint8, shape: x.shape), "w": TensorType(dtype: w.dtype, shape: w.shape)]
            let typed = try Graph.inferNode(conv, types: types, values: [:]).first ?? nil
            #expect(typed == TensorType(dtype: .int32, shape: y.shape), "ConvInteger \(p) auto_pad \(autoPad)")

            let nhwc = Node(name: "conv", opType: "ConvIntegerNHWC", domain: FusedOps.domain, inputs: ["x", "w"], outputs: ["y"],
                            attributes: window)
            let channelsLast = ["x": TensorType(dtype: .uint8, shape: [p.n, p.h, p.w, p.c]), "w": types["w"]!]
            let typedNHWC = try Graph.inferNode(nhwc, types: channelsLast, values: [:]).first ?? nil
            #expect(typedNHWC == TensorType(dtype: .int32, shape: [y.shape[0], y.shape[2], y.shape[3], y.shape[1]]), "ConvIntegerNHWC \(p)")
        }
    }

    /// Ops typed at run time are typed once by running their kernel on zeros, where their output
    /// shapes depend on no computed value: a Gather of a constant table by computed indices, and
    /// broadcasting ops (Max, Greater, And, Where) of computed inputs, in any position. The run
    /// gives what the unplanned executor gives.
    @Test func lookupsAndBroadcastsOfComputedValuesAreTypedOnce() throws {
        let table = seededRandom([10, 4], seed: 3)
        let nodes = [
            Node(opType: "Gather", inputs: ["table", "ids"], outputs: ["e"]),
            Node(opType: "Max", inputs: ["floor", "e"], outputs: ["m"]),
            Node(opType: "Greater", inputs: ["m", "x"], outputs: ["above"]),
            Node(opType: "Less", inputs: ["e", "x"], outputs: ["below"]),
            Node(opType: "Or", inputs: ["above", "below"], outputs: ["either"]),
            Node(opType: "Where", inputs: ["either", "m", "x"], outputs: ["chosen"]),
            Node(opType: "Add", inputs: ["chosen", "e"], outputs: ["y"]),
        ]
        var g = Graph(name: "g", inputs: [ValueInfo(name: "ids", type: TensorType(dtype: .int64, shape: [2, 3])),
                                          ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [3, 1]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: nodes,
                      initializers: NamedTensors([("table", table), ("floor", Tensor(shape: [], scalars: [Float(-0.25)]))]))
        g.metadata.opsetImports = [("", 17)]
        let feeds = ["ids": Tensor(shape: [2, 3], scalars: [Int64(9), 0, 4, 4, 7, 1]), "x": seededRandom([3, 1], seed: 4)]
        let want = try #require(try Executor(graph: g, options: RuntimeOptions(plans: false)).run(feeds)["y"])
        let (stats, out) = try #require(try Executor(graph: g).planRunStats(feeds), "the graph did not plan")
        #expect(stats.inferringSteps == 0)
        #expect(try #require(out["y"]).bitwiseEqual(want))
        #expect(want.shape == [2, 3, 4])
    }
    /// RNN, GRU and LSTM are typed by their schema from X alone (initial states computed from
    /// shapes need not be typed): the inferred shapes are the ones the kernels make, in both
    /// layouts and directions, with and without `hidden_size`.
    @Test func recurrentOpsAreTypedAsTheKernelsShapeThem() throws {
        let (seq, batch, input, hidden) = (3, 2, 5, 4)
        for (op, gates) in [("RNN", 1), ("GRU", 3), ("LSTM", 4)] {
            for layout in [0, 1] {
                for direction in ["forward", "bidirectional"] {
                    for named in [true, false] {
                        let dirs = direction == "bidirectional" ? 2 : 1
                        let x = seededRandom(layout == 0 ? [seq, batch, input] : [batch, seq, input], seed: 1)
                        let w = seededRandom([dirs, gates * hidden, input], seed: 2), r = seededRandom([dirs, gates * hidden, hidden], seed: 3)
                        var attrs = [Attribute(name: "layout", value: .int(layout)), Attribute(name: "direction", value: .string(direction))]
                        if named { attrs.append(Attribute(name: "hidden_size", value: .int(hidden))) }
                        let outs = op == "LSTM" ? ["y", "yh", "yc"] : ["y", "yh"]
                        let node = Node(name: "rec", opType: op, inputs: ["x", "w", "r"], outputs: outs, attributes: attrs)
                        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: x.shape))],
                                      outputs: outs.map { ValueInfo(name: $0, type: nil) }, nodes: [node],
                                      initializers: NamedTensors([("w", w), ("r", r)]))
                        g.metadata.opsetImports = [("", 14)]
                        let ran = try Executor(graph: g, options: RuntimeOptions(plans: false)).run(["x": x])
                        let types = ["x": TensorType(dtype: .float32, shape: x.shape), "w": TensorType(dtype: .float32, shape: w.shape),
                                     "r": TensorType(dtype: .float32, shape: r.shape)]
                        let typed = try Graph.inferNode(node, types: types, values: [:])
                        for (k, name) in outs.enumerated() {
                            let shape = try #require(ran[name]).shape
                            #expect(typed[k] == TensorType(dtype: .float32, shape: shape), "\(op) layout \(layout) \(direction) \(name)")
                        }
                    }
                }
            }
        }
    }

    /// Squeeze and Unsqueeze with constant axes (negative ones too) are typed as the kernels
    /// shape them; a dim of unknown size that is squeezed is taken to be 1, as the kernel requires.
    @Test func squeezesAreTypedAsTheKernelsShapeThem() throws {
        let cases: [(String, [Int], [Int64])] = [("Squeeze", [3, 1, 2, 1], [1]), ("Squeeze", [3, 1, 2, 1], [-1, 1]),
                                                 ("Unsqueeze", [2, 3], [0, -1]), ("Unsqueeze", [2, 3], [1])]
        for (op, shape, axes) in cases {
            let node = Node(name: "s", opType: op, inputs: ["x", "axes"], outputs: ["y"])
            let a = Tensor(shape: [axes.count], scalars: axes)
            var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: shape))],
                          outputs: [ValueInfo(name: "y", type: nil)], nodes: [node], initializers: NamedTensors([("axes", a)]))
            g.metadata.opsetImports = [("", 13)]
            let y = try #require(try Executor(graph: g, options: RuntimeOptions(plans: false)).run(["x": seededRandom(shape, seed: 5)])["y"])
            let typed = try Graph.inferNode(node, types: ["x": TensorType(dtype: .float32, shape: shape), "axes": TensorType(dtype: .int64, shape: [axes.count])],
                                            values: ["axes": a]).first ?? nil
            #expect(typed == TensorType(dtype: .float32, shape: y.shape), "\(op) \(shape) \(axes)")
        }
        let unknown = Node(name: "s", opType: "Squeeze", inputs: ["x", "axes"], outputs: ["y"])
        let typed = try Graph.inferNode(unknown, types: ["x": TensorType(dtype: .float32, dims: [.fixed(3), .unknown, .symbolic("n")]),
                                                         "axes": TensorType(dtype: .int64, shape: [1])],
                                        values: ["axes": Tensor(shape: [1], scalars: [Int64(1)])]).first ?? nil
        #expect(typed == TensorType(dtype: .float32, dims: [.fixed(3), .symbolic("n")]))
        // An empty axes list is left to the runtime.
        let none = try Graph.inferNode(unknown, types: ["x": TensorType(dtype: .float32, shape: [3, 1]), "axes": TensorType(dtype: .int64, shape: [0])],
                                       values: ["axes": Tensor(shape: [0], scalars: [Int64]())]).first ?? nil
        #expect(none == nil)
    }
}
