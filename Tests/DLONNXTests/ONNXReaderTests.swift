@testable import DLONNX
import DLGraph
import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

struct ONNXReaderTests {
    @Test func readsTheMLPFixture() throws {
        let g = try ONNXReader.read(path: TestPackage.fixture("models/mlp.onnx"))
        #expect(g.inputs.map(\.name) == ["x"])
        #expect(g.inputs[0].type == TensorType(dtype: .float32, dims: [.symbolic("batch"), .fixed(784)]))
        #expect(g.outputs.map(\.name) == ["y"])
        #expect(g.initializers.names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"])
        #expect(g.initializers["fc1.weight"]?.shape == [512, 784])
        #expect(g.opCounts == ["Gemm": 3, "Relu": 2])
        #expect(g.metadata.onnxOpset == 17)
        #expect(g.metadata.producerName == "dlkit-fixtures")
        #expect(!g.metadata.metadataProps.isEmpty)
    }

    @Test func readsConstantNodesAndAttributes() throws {
        let g = try ONNXReader.read(path: TestPackage.fixture("models/ops.onnx"))
        let constants = g.nodes.filter { $0.opType == "Constant" }
        #expect(constants.count == 2)
        for c in constants { #expect(throws: Never.self) { _ = try ConstantOp.value(of: c) } }
        let types = try g.inferTypes()
        #expect(types["y"]?.dims == [.symbolic("batch"), .fixed(96)])
    }

    @Test(arguments: ["mlp", "cnn", "ops"])
    func writtenModelReadsBackTheSame(_ name: String) throws {
        let dir = TemporaryFolder()
        let a = try ONNXReader.read(path: TestPackage.fixture("models/\(name).onnx"))
        try ONNXWriter.write(a, to: dir.file("out.onnx"))
        let b = try ONNXReader.read(path: dir.file("out.onnx"))
        #expect(b.inputs == a.inputs && b.outputs == a.outputs && b.valueInfo == a.valueInfo)
        #expect(b.nodes.map(\.opType) == a.nodes.map(\.opType))
        #expect(b.nodes.map(\.name) == a.nodes.map(\.name))
        #expect(b.nodes.map(\.inputs) == a.nodes.map(\.inputs))
        #expect(b.nodes.map { $0.attributes.map(\.name) } == a.nodes.map { $0.attributes.map(\.name) })
        #expect(b.initializers.names == a.initializers.names)
        for (n, t) in a.initializers { #expect(b.initializers[n]?.bitwiseEqual(t) == true, "\(n)") }
        #expect(b.metadata.metadataProps.map(\.key) == a.metadata.metadataProps.map(\.key))
        #expect(b.metadata.docString == a.metadata.docString)
        #expect(b.metadata.producerName == ONNXWriter.producerName)
    }

    @Test func truncatedFileIsNotAModel() throws {
        let dir = TemporaryFolder()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))))
        let path = dir.write(Array(bytes.prefix(bytes.count / 2)), to: "cut.onnx")
        #expect(throws: ONNXError.self) { try ONNXReader.read(path: path) }
        do { _ = try ONNXReader.read(path: path) } catch {
            #expect(error.description == "\(path): not an ONNX model (the bytes are not a valid protobuf ModelProto; truncated or another format)")
        }
    }

    @Test func emptyAndMissingFilesAreNamed() throws {
        let dir = TemporaryFolder()
        let empty = dir.write([], to: "empty.onnx")
        do { _ = try ONNXReader.read(path: empty); Issue.record("expected an error") } catch {
            #expect(error.description == "\(empty): not an ONNX model (the file is empty)")
        }
        do { _ = try ONNXReader.read(path: dir.file("nope.onnx")); Issue.record("expected an error") } catch {
            #expect(error.description.hasPrefix("\(dir.file("nope.onnx")): cannot open: No such file"))
        }
    }

    @Test func everyUnsupportedOpIsListedInOneError() throws {
        let dir = TemporaryFolder()
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1]))],
                      outputs: [ValueInfo(name: "d", type: nil)],
                      nodes: [Node(opType: "FancyLSTM", inputs: ["x"], outputs: ["a"]), Node(opType: "FancyLSTM", inputs: ["a"], outputs: ["b"]),
                              Node(opType: "FancyEinsum", inputs: ["b"], outputs: ["c"]), Node(opType: "Relu", inputs: ["c"], outputs: ["d"])])
        try ONNXWriter.write(g, to: dir.file("u.onnx"))
        do { _ = try ONNXReader.read(path: dir.file("u.onnx")); Issue.record("expected an error") } catch {
            #expect(error.description == "\(dir.file("u.onnx")): unsupported ops: FancyEinsum, FancyLSTM (x2)")
        }
        // Without the op check (inspect), the model still reads.
        #expect(try ONNXReader.read(path: dir.file("u.onnx"), checkOps: false).nodes.count == 4)
    }

    @Test func rawDataOfTheWrongSizeIsNamed() throws {
        var t = ProtoMessage()
        t.int(1, 4)  // dims [4]
        t.int(2, 1)  // float
        t.string(8, "w")
        t.bytes(9, [0, 0, 0, 0])  // 4 bytes, needs 16
        let dir = TemporaryFolder()
        let path = try writeModel(initializer: t, in: dir)
        do { _ = try ONNXReader.read(path: path); Issue.record("expected an error") } catch {
            #expect(error.description == "\(path): tensor 'w': raw_data holds 4 bytes, shape [4] of float32 needs 16")
        }
    }

    @Test(arguments: ["/etc/passwd", "../outside.bin", "sub/../../outside.bin"])
    func externalDataOutsideTheModelFolderIsRefused(_ location: String) throws {
        var t = ProtoMessage()
        t.int(1, 1)
        t.int(2, 1)
        t.string(8, "w")
        var loc = ProtoMessage()
        loc.string(1, "location")
        loc.string(2, location)
        t.message(13, loc)
        t.int(14, 1)  // EXTERNAL
        let dir = TemporaryFolder()
        let path = try writeModel(initializer: t, in: dir)
        do { _ = try ONNXReader.read(path: path); Issue.record("expected an error") } catch {
            #expect(error.description.contains("tensor 'w': external data location '\(location)'"))
        }
    }

    @Test func externalDataInsideTheFolderIsMapped() throws {
        let folder = TemporaryFolder()
        var data = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: Float(2.5)) { data.replaceSubrange(4..<8, with: $0) }
        folder.write(data, to: "w.bin")
        var t = ProtoMessage()
        t.int(1, 1)
        t.int(2, 1)
        t.string(8, "w")
        for (k, v) in [("location", "w.bin"), ("offset", "4"), ("length", "4")] {
            var e = ProtoMessage()
            e.string(1, k)
            e.string(2, v)
            t.message(13, e)
        }
        t.int(14, 1)
        let path = try writeModel(initializer: t, in: folder)
        let g = try ONNXReader.read(path: path)
        let w = try #require(g.initializers["w"])
        #expect(w.isMapped && w.scalars(as: Float.self) == [2.5])
    }

    @Test func typedFieldsDecodeLikeRawData() throws {
        let dir = TemporaryFolder()
        var t = ProtoMessage()
        t.int(1, 3)
        t.int(2, 1)  // float in float_data (field 4)
        t.string(8, "w")
        for v: Float in [1.5, -2, 0.25] { t.float(4, v) }
        let g = try ONNXReader.read(path: try writeModel(initializer: t, in: dir))
        #expect(g.initializers["w"]?.scalars(as: Float.self) == [1.5, -2, 0.25])

        var i = ProtoMessage()
        i.int(1, 2)
        i.int(2, 7)  // int64 in int64_data (field 7)
        i.string(8, "w")
        for v in [-5, 1 << 40] { i.int(7, v) }
        let dir2 = TemporaryFolder()
        let h = try ONNXReader.read(path: try writeModel(initializer: i, in: dir2))
        #expect(h.initializers["w"]?.scalars(as: Int64.self) == [-5, 1 << 40])
    }

    @Test func typedFieldWithTooFewValuesIsNamed() throws {
        let dir = TemporaryFolder()
        var t = ProtoMessage()
        t.int(1, 3)
        t.int(2, 1)
        t.string(8, "w")
        t.float(4, 1)
        let path = try writeModel(initializer: t, in: dir)
        do { _ = try ONNXReader.read(path: path); Issue.record("expected an error") } catch {
            #expect(error.description == "\(path): tensor 'w': shape [3] needs 3 values, float_data holds 1")
        }
    }

    @Test func dimValueMinusOneAndDimParamAreDynamic() throws {
        let dir = TemporaryFolder()
        let g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, dims: [.symbolic("n"), .unknown, .fixed(3)]))],
                      outputs: [ValueInfo(name: "y", type: nil)], nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])])
        try ONNXWriter.write(g, to: dir.file("d.onnx"))
        #expect(try ONNXReader.read(path: dir.file("d.onnx")).inputs[0].type?.dims == [.symbolic("n"), .unknown, .fixed(3)])
    }

    /// A model `w -> Identity -> y` whose one initializer is the given TensorProto.
    func writeModel(initializer: ProtoMessage, in dir: TemporaryFolder) throws -> String {
        var node = ProtoMessage()
        node.string(1, "w")
        node.string(2, "y")
        node.string(4, "Identity")
        var out = ProtoMessage()
        out.string(1, "y")
        var graph = ProtoMessage()
        graph.message(1, node)
        graph.string(2, "g")
        graph.message(5, initializer)
        graph.message(12, out)
        var opset = ProtoMessage()
        opset.string(1, "")
        opset.int(2, 17)
        var model = ProtoMessage()
        model.int(1, 8)
        model.message(7, graph)
        model.message(8, opset)
        let path = dir.file("m.onnx")
        try AtomicFileWriter.write(model.serialized(), to: path)
        return path
    }
}
