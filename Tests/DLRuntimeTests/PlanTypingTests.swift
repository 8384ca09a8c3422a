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
}
