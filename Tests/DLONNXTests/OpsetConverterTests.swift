@testable import DLONNX
import DLGraph
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Rewriting nodes between opset versions for writing.
struct OpsetConverterTests {
    static func f32(_ dims: [Int]) -> TensorType { TensorType(dtype: .float32, shape: dims) }

    /// One-node graph at `opset` with input x of `dims` (plus `extraInputs`).
    static func graph(_ node: Node, opset: Int, dims: [Dim]? = [.fixed(2), .fixed(3)],
                      initializers: NamedTensors = NamedTensors(), extraInputs: [ValueInfo] = []) -> Graph {
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: dims))] + extraInputs,
                      outputs: node.outputs.prefix(1).map { ValueInfo(name: $0, type: nil) }, nodes: [node],
                      initializers: initializers)
        g.metadata.opsetImports = [("", opset)]
        return g
    }

    @Test(arguments: [(12, -1), (11, -1), (9, 1)])
    func softmaxOverTheLastAxisTakesTheOldForm(_ target: Int, _ axis: Int) throws {
        var g = Self.graph(Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"]), opset: 17)
        try OpsetConverter.convert(&g, to: target, path: "m.onnx")
        #expect(g.nodes[0].attribute("axis").map { "\($0)" } == "\(AttributeValue.int(axis))")
        #expect(g.metadata.onnxOpset == target)
    }

    @Test func oldSoftmaxWithItsDefaultAxisOnARankTwoInputMovesUp() throws {
        var g = Self.graph(Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"]), opset: 11)
        try OpsetConverter.convert(&g, to: 17, path: "m.onnx")
        #expect(try g.nodes[0].int("axis", default: 0) == -1)
    }

    @Test func everyBlockingNodeIsListedInOneError() throws {
        // Softmax over axis 0, a Dropout switched by a run-time input, a Reshape with allowzero=1
        // and a run-time shape: none has an opset-11 form.
        var g = Graph(name: "g",
                      inputs: [ValueInfo(name: "x", type: Self.f32([2, 3])),
                               ValueInfo(name: "train", type: TensorType(dtype: .bool, shape: [])),
                               ValueInfo(name: "shape", type: TensorType(dtype: .int64, shape: [2]))],
                      outputs: [ValueInfo(name: "r", type: nil)],
                      nodes: [Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["s"], attributes: [Attribute(name: "axis", value: .int(0))]),
                              Node(name: "drop", opType: "Dropout", inputs: ["s", "", "train"], outputs: ["d"]),
                              Node(name: "re", opType: "Reshape", inputs: ["d", "shape"], outputs: ["r"], attributes: [Attribute(name: "allowzero", value: .int(1))])])
        g.metadata.opsetImports = [("", 17)]
        do {
            try OpsetConverter.convert(&g, to: 11, path: "m.onnx")
            Issue.record("expected an error")
        } catch {
            let m = error.description
            #expect(m.hasPrefix("m.onnx: cannot write opset 11 (the graph is opset 17): 3 nodes block it: "))
            #expect(m.contains("node 'sm' (Softmax): Softmax over axis 0 of a rank-2 input has no opset-11 form"))
            #expect(m.contains("node 'drop' (Dropout): training_mode 'train' is not a constant false"))
            #expect(m.contains("node 're' (Reshape): allowzero=1 with a shape that may hold 0 needs opset 14 or later"))
        }
        #expect(g.metadata.onnxOpset == 17, "a failed conversion leaves the graph as it was")
    }

    @Test func softmaxOnAnInputOfUnknownRankBlocksOnlyWhenTheAxisMatters() throws {
        var g = Self.graph(Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axis", value: .int(1))]),
                           opset: 17, dims: nil)
        do { try OpsetConverter.convert(&g, to: 12, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("the rank of input 'x' is unknown"))
        }
        var h = Self.graph(Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"]), opset: 17, dims: nil)
        try OpsetConverter.convert(&h, to: 12, path: "m.onnx")
        #expect(try h.nodes[0].int("axis", default: 0) == -1)
    }

    @Test func dropoutRatioMovesBetweenAttributeAndInput() throws {
        var g = Self.graph(Node(name: "d", opType: "Dropout", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "ratio", value: .float(0.25))]), opset: 11)
        try OpsetConverter.convert(&g, to: 13, path: "m.onnx")
        #expect(g.nodes[0].attributes.isEmpty && g.nodes[0].inputs == ["x", "y_ratio"])
        #expect(g.initializers["y_ratio"]?.scalars(as: Float.self) == [0.25])
        try OpsetConverter.convert(&g, to: 10, path: "m.onnx")
        #expect(g.nodes[0].inputs == ["x"])
        #expect(try g.nodes[0].float("ratio", default: 0) == 0.25)
    }

    @Test func dropoutMaskThatNothingReadsIsDroppedGoingBelowTen() throws {
        var g = Self.graph(Node(name: "d", opType: "Dropout", inputs: ["x"], outputs: ["y", "mask"]), opset: 13)
        try OpsetConverter.convert(&g, to: 9, path: "m.onnx")
        #expect(g.nodes[0].outputs == ["y"])
        var h = Self.graph(Node(name: "d", opType: "Dropout", inputs: ["x"], outputs: ["y", "mask"]), opset: 13)
        h.outputs.append(ValueInfo(name: "mask", type: nil))
        do { try OpsetConverter.convert(&h, to: 9, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("output 'mask' (the mask) differs before and after opset 10"))
        }
    }

    @Test func gemmWithoutCGetsAZeroBiasBeforeEleven() throws {
        let w = Tensor(shape: [3, 4], scalars: [Float](repeating: 1, count: 12))
        var g = Self.graph(Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"]), opset: 17,
                           initializers: NamedTensors([("w", w)]))
        try OpsetConverter.convert(&g, to: 9, path: "m.onnx")
        #expect(g.nodes[0].inputs == ["x", "w", "y_zero_c"])
        #expect(g.initializers["y_zero_c"]?.scalars(as: Float.self) == [0])
    }

    @Test func negativeAxesBecomePositiveBeforeEleven() throws {
        var g = Self.graph(Node(name: "f", opType: "Flatten", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axis", value: .int(-1))]), opset: 13)
        try OpsetConverter.convert(&g, to: 9, path: "m.onnx")
        #expect(try g.nodes[0].int("axis", default: 0) == 1)
    }

    @Test func poolingAttributesThatOldOpsetsLackBlockUnlessNeutral() throws {
        let pool = Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                        attributes: [Attribute(name: "kernel_shape", value: .ints([2])), Attribute(name: "ceil_mode", value: .int(0)),
                                     Attribute(name: "dilations", value: .ints([1]))])
        var g = Self.graph(pool, opset: 17, dims: [.fixed(1), .fixed(1), .fixed(4)])
        try OpsetConverter.convert(&g, to: 8, path: "m.onnx")
        #expect(g.nodes[0].attributes.map(\.name) == ["kernel_shape"])
        var ceil = pool
        ceil.attributes[1].value = .int(1)
        var h = Self.graph(ceil, opset: 17, dims: [.fixed(1), .fixed(1), .fixed(4)])
        do { try OpsetConverter.convert(&h, to: 9, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("node 'p' (MaxPool): ceil_mode=1 needs opset 10 or later"))
        }
    }

    @Test func constantValueIntsBecomeATensorBeforeTwelve() throws {
        var g = Self.graph(Node(name: "c", opType: "Constant", inputs: [], outputs: ["y"], attributes: [Attribute(name: "value_ints", value: .ints([4, 5]))]), opset: 17)
        try OpsetConverter.convert(&g, to: 11, path: "m.onnx")
        #expect(try g.nodes[0].tensor("value")?.scalars(as: Int64.self) == [4, 5])
        do { try OpsetConverter.convert(&g, to: 8, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("a int64 constant needs opset 9 or later"))
        }
    }

    @Test func attributesThatBecameInputsAreInputsInTheIRAndAttributesWhenWrittenOld() throws {
        // Squeeze's axes became an input at 13; Clip's min/max at 11.
        var g = Self.graph(Node(name: "sq", opType: "Squeeze", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axes", value: .ints([0]))]), opset: 11)
        NormalForm.normalise(&g)
        #expect(g.nodes.map(\.opType) == ["Constant", "Squeeze"])
        #expect(g.nodes[1].inputs == ["x", "y_axes"] && g.nodes[1].attributes.isEmpty)
        #expect(try g.nodes[0].tensor("value")?.scalars(as: Int64.self) == [0])
        var twice = g
        NormalForm.normalise(&twice)
        #expect(twice.nodes.map(\.inputs) == g.nodes.map(\.inputs), "a normal graph stays as it is")
        #expect(NormalForm.writtenForm(g, opset: 13).nodes.map(\.opType) == ["Constant", "Squeeze"])
        let old = NormalForm.writtenForm(g, opset: 12)
        #expect(old.nodes.map(\.opType) == ["Squeeze"] && old.nodes[0].inputs == ["x"])
        #expect(try old.nodes[0].ints("axes") == [0])

        // A bound takes the input's element type; a left-out one stays left out.
        var c = Self.graph(Node(name: "cl", opType: "Clip", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "max", value: .float(6))]), opset: 10)
        c.inputs[0].type = TensorType(dtype: .float64, shape: [2, 3])
        NormalForm.normalise(&c)
        #expect(c.nodes[1].inputs == ["x", "", "y_max"])
        #expect(try c.nodes[0].tensor("value")?.scalars(as: Double.self) == [6])
        let cOld = NormalForm.writtenForm(c, opset: 10)
        #expect(cOld.nodes.count == 1 && cOld.nodes[0].inputs == ["x"] && cOld.nodes[0].attribute("min") == nil)
        #expect(try cOld.nodes[0].float("max", default: 0) == 6)

        // An initializer moves too, and goes when nothing else reads it; a run-time input blocks.
        var s = Self.graph(Node(name: "sq", opType: "Squeeze", inputs: ["x", "ax"], outputs: ["y"]), opset: 13,
                           initializers: NamedTensors([("ax", Tensor(shape: [1], scalars: [Int64(0)]))]))
        try OpsetConverter.convert(&s, to: 12, path: "m.onnx")
        let sOld = NormalForm.writtenForm(s, opset: 12)
        #expect(sOld.nodes[0].inputs == ["x"] && sOld.initializers["ax"] == nil)
        var d = Self.graph(Node(name: "cl", opType: "Clip", inputs: ["x", "lo"], outputs: ["y"]), opset: 13,
                           extraInputs: [ValueInfo(name: "lo", type: Self.f32([]))])
        do { try OpsetConverter.convert(&d, to: 10, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description.contains("input 'lo' (min) is computed at run time; opset 10 needs it as an attribute"))
        }
    }

    @Test(arguments: [6, 27])
    func targetsOutsideTheSupportedRangeAreRefused(_ target: Int) throws {
        var g = Self.graph(Node(opType: "Relu", inputs: ["x"], outputs: ["y"]), opset: 17)
        do { try OpsetConverter.convert(&g, to: target, path: "m.onnx"); Issue.record("expected an error") } catch {
            #expect(error.description == "m.onnx: opset ai.onnx \(target): DLKit writes opsets 7 to 26 (the newest ONNX Runtime 1.31 loads)")
        }
    }

    @Test func writingAtAnotherOpsetSetsTheImportAndAMatchingIRVersion() throws {
        let dir = TemporaryFolder()
        var g = try ONNXReader.read(path: TestPackage.fixture("models/mlp.onnx"))
        g.metadata.irVersion = 8
        let report = try ONNXWriter.write(g, to: dir.file("m.onnx"), options: ONNXWriteOptions(opset: 11))
        #expect(report.opset == 11 && report.irVersion == 6)
        let back = try ONNXReader.read(path: dir.file("m.onnx"))
        #expect(back.metadata.onnxOpset == 11 && back.metadata.irVersion == 6)
        let up = try ONNXWriter.write(g, to: dir.file("n.onnx"), options: ONNXWriteOptions(opset: 21))
        #expect(up.irVersion == 10)
    }

    /// The IR's one rule (ARCHITECTURE.md, "The IR's form"): a graph read at an old opset holds
    /// the newest form of each op (Squeeze took `axes` as an attribute before 13, Clip
    /// `min`/`max` before 11), is written back at its own opset in that opset's form, and is
    /// converted only when written at another.
    @Test func anOldOpsetGraphIsReadInTheIRsFormAndWrittenInItsOwn() throws {
        let dir = TemporaryFolder()
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: Self.f32([1, 2, 3]))],
                      outputs: [ValueInfo(name: "y", type: nil)],
                      nodes: [Node(name: "cl", opType: "Clip", inputs: ["x"], outputs: ["c"],
                                   attributes: [Attribute(name: "min", value: .float(0)), Attribute(name: "max", value: .float(6))]),
                              Node(name: "sq", opType: "Squeeze", inputs: ["c"], outputs: ["y"], attributes: [Attribute(name: "axes", value: .ints([0]))])])
        g.metadata.opsetImports = [("", 10)]
        let report = try ONNXWriter.write(g, to: dir.file("old.onnx"))
        #expect(report.opset == 10 && report.convertedNodes == 0)
        let read = try ONNXReader.read(path: dir.file("old.onnx"))
        #expect(read.metadata.onnxOpset == 10)
        let byName = Dictionary(read.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["sq"]?.inputs == ["c", "y_axes"] && byName["sq"]?.attribute("axes") == nil)
        #expect(byName["cl"]?.inputs == ["x", "c_min", "c_max"])
        #expect(read.initializers.isEmpty, "the moved values are Constant nodes, not weights")

        // Written back at its own opset: the file has that opset's forms, as the source had.
        try ONNXWriter.write(read, to: dir.file("again.onnx"))
        let raw = try ONNXReader.read(path: dir.file("again.onnx"), checkOps: false)
        #expect(raw.metadata.onnxOpset == 10)
        #expect(raw.nodes.map(\.opType) == ["Clip", "Squeeze"])
        #expect(raw.nodes.map(\.inputs) == [["x"], ["c"]])
        #expect(try raw.nodes[1].ints("axes") == [0] && raw.nodes[0].float("max", default: 0) == 6)

        // Written at 13: the IR's form is 13's.
        let up = try ONNXWriter.write(read, to: dir.file("new.onnx"), options: ONNXWriteOptions(opset: 13))
        #expect(up.opset == 13)
        let new = try ONNXReader.read(path: dir.file("new.onnx"), checkOps: false)
        let newByName = Dictionary(new.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(newByName["sq"]?.inputs.count == 2 && newByName["sq"]?.attribute("axes") == nil)
        #expect(newByName["cl"]?.inputs.count == 3 && newByName["cl"]?.attribute("max") == nil)
    }
}
