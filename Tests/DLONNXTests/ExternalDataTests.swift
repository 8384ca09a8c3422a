@testable import DLONNX
import DLGraph
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Writing and reading ONNX external data: layout, alignment, atomicity and the refusals.
struct ExternalDataTests {
    /// `x -> Add(w_big) -> Add(w_small) -> Add(w_mid) -> y`, weights of 4000, 12 and 400 bytes.
    static func model() -> Graph {
        let big = Tensor(shape: [1000], scalars: (0..<1000).map { Float($0) * 0.5 })
        let small = Tensor(shape: [3], scalars: [Float(1), 2, 3])
        let mid = Tensor(shape: [100], scalars: (0..<100).map { Float(-$0) })
        var g = Graph(name: "g", inputs: [ValueInfo(name: "x", type: TensorType(dtype: .float32, shape: [1000]))],
                      outputs: [ValueInfo(name: "y", type: TensorType(dtype: .float32, shape: [1000]))],
                      nodes: [Node(name: "a", opType: "Add", inputs: ["x", "w_big"], outputs: ["t"]),
                              Node(name: "s", opType: "Relu", inputs: ["t"], outputs: ["y"])],
                      initializers: NamedTensors([("w_big", big), ("w_small", small), ("w_mid", mid)]))
        g.metadata.opsetImports = [("", 17)]
        return g
    }

    @Test func largeTensorsGoToOneAlignedDataFileAndSmallOnesStayInline() throws {
        let dir = TemporaryFolder()
        let path = dir.file("m.onnx")
        let report = try ONNXWriter.write(Self.model(), to: path,
                                          options: ONNXWriteOptions(externalData: .always, externalThreshold: 100))
        #expect(dir.contents() == ["m.onnx", "m.onnx.data"])
        #expect(report.dataPath == path + ".data" && report.externalTensors == 2 && report.externalBytes == 4400)
        // w_big at 0, w_mid at the next multiple of 4096; w_small (12 bytes) inline.
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path + ".data")))
        #expect(data.count == 4096 + 400)
        let g = Self.model()
        try g.initializers["w_big"]!.withUnsafeBytes { #expect(Array(data[0..<4000]) == Array($0)) }
        try g.initializers["w_mid"]!.withUnsafeBytes { #expect(Array(data[4096..<4496]) == Array($0)) }
        #expect(data[4000..<4096].allSatisfy { $0 == 0 })

        let back = try ONNXReader.read(path: path)
        #expect(back.initializers.names == ["w_big", "w_small", "w_mid"])
        for (n, t) in g.initializers { #expect(back.initializers[n]?.bitwiseEqual(t) == true, "\(n)") }
        #expect(back.initializers["w_big"]?.isMapped == true && back.initializers["w_mid"]?.isMapped == true)
        #expect(back.initializers["w_small"]?.isMapped == false)
    }

    @Test func automaticModeKeepsSmallModelsInOneFile() throws {
        let dir = TemporaryFolder()
        let report = try ONNXWriter.write(Self.model(), to: dir.file("m.onnx"))
        #expect(report.dataPath == nil && !report.switchedToExternalData)
        #expect(dir.contents() == ["m.onnx"])
    }

    @Test func thresholdAboveEveryTensorWritesNoDataFile() throws {
        let dir = TemporaryFolder()
        let report = try ONNXWriter.write(Self.model(), to: dir.file("m.onnx"),
                                          options: ONNXWriteOptions(externalData: .always, externalThreshold: 1 << 20))
        #expect(report.dataPath == nil && dir.contents() == ["m.onnx"])
    }

    @Test func failedModelRenameLeavesNeitherFile() throws {
        let dir = TemporaryFolder()
        // The model's name is taken by a folder: the rename of the model fails after the data
        // file was already renamed into place; it must be removed again.
        try FileManager.default.createDirectory(atPath: dir.file("m.onnx"), withIntermediateDirectories: false)
        do {
            try ONNXWriter.write(Self.model(), to: dir.file("m.onnx"), options: ONNXWriteOptions(externalData: .always, externalThreshold: 0))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix("\(dir.file("m.onnx")): cannot write:"))
        }
        #expect(dir.contents() == ["m.onnx"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("m.onnx")).isEmpty)
    }

    @Test func failedDataRenameLeavesNeitherFile() throws {
        let dir = TemporaryFolder()
        try FileManager.default.createDirectory(atPath: dir.file("m.onnx.data"), withIntermediateDirectories: false)
        do {
            try ONNXWriter.write(Self.model(), to: dir.file("m.onnx"), options: ONNXWriteOptions(externalData: .always, externalThreshold: 0))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix("\(dir.file("m.onnx")): cannot write:"))
        }
        #expect(dir.contents() == ["m.onnx.data"])
    }

    @Test func unwritableFolderLeavesNothing() throws {
        let dir = TemporaryFolder()
        do {
            try ONNXWriter.write(Self.model(), to: dir.file("missing/m.onnx"), options: ONNXWriteOptions(externalData: .always))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("missing/m.onnx"))
        }
        #expect(dir.contents().isEmpty)
    }

    @Test func externalDataSurvivesAnotherRoundTrip() throws {
        // Read a model whose weights are mapped from its data file, write it again with
        // external data elsewhere: the bytes move, the values stay.
        let a = TemporaryFolder(), b = TemporaryFolder()
        try ONNXWriter.write(Self.model(), to: a.file("m.onnx"), options: ONNXWriteOptions(externalData: .always, externalThreshold: 0))
        let read = try ONNXReader.read(path: a.file("m.onnx"))
        try ONNXWriter.write(read, to: b.file("n.onnx"), options: ONNXWriteOptions(externalData: .always, externalThreshold: 0))
        let again = try ONNXReader.read(path: b.file("n.onnx"))
        for (n, t) in Self.model().initializers { #expect(again.initializers[n]?.bitwiseEqual(t) == true, "\(n)") }
        #expect(b.contents() == ["n.onnx", "n.onnx.data"])
    }

    // MARK: refusals on reading

    /// A model whose one initializer `w` (float[2]) points at `location` with the given fields.
    func model(location: String, offset: String? = nil, length: String? = nil, in dir: TemporaryFolder) throws -> String {
        var t = ProtoMessage()
        t.int(1, 2)
        t.int(2, 1)
        t.string(8, "w")
        var fields = [("location", location)]
        if let offset { fields.append(("offset", offset)) }
        if let length { fields.append(("length", length)) }
        for (k, v) in fields {
            var e = ProtoMessage()
            e.string(1, k)
            e.string(2, v)
            t.message(13, e)
        }
        t.int(14, 1)
        return try ONNXReaderTests().writeModel(initializer: t, in: dir)
    }

    func expectRefusal(_ path: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do { _ = try ONNXReader.read(path: path); Issue.record("expected an error", sourceLocation: sourceLocation) } catch {
            #expect(error.description == "\(path): tensor 'w': external data \(message)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: ["/tmp/w.bin", "../w.bin", "a/../../w.bin", "..\\w.bin", "C:\\w.bin", "\\\\server\\w.bin"])
    func locationsLeavingTheFolderAreRefused(_ location: String) throws {
        let dir = TemporaryFolder()
        expectRefusal(try model(location: location, in: dir), "location '\(location)' leaves the model's folder")
    }

    @Test func symlinkPointingOutsideTheFolderIsRefused() throws {
        let outside = TemporaryFolder(), dir = TemporaryFolder()
        outside.write([UInt8](repeating: 0, count: 8), to: "secret.bin")
        try FileManager.default.createSymbolicLink(atPath: dir.file("w.bin"), withDestinationPath: outside.file("secret.bin"))
        expectRefusal(try model(location: "w.bin", in: dir), "location 'w.bin' resolves outside the model's folder")
    }

    @Test func symlinkedFolderPointingOutsideIsRefused() throws {
        let outside = TemporaryFolder(), dir = TemporaryFolder()
        outside.write([UInt8](repeating: 0, count: 8), to: "w.bin")
        try FileManager.default.createSymbolicLink(atPath: dir.file("sub"), withDestinationPath: outside.path)
        expectRefusal(try model(location: "sub/w.bin", in: dir), "location 'sub/w.bin' resolves outside the model's folder")
    }

    @Test func symlinkStayingInsideTheFolderIsRead() throws {
        let dir = TemporaryFolder()
        var bytes: [UInt8] = []
        for v: Float in [1.5, -2] { withUnsafeBytes(of: v) { bytes += $0 } }
        dir.write(bytes, to: "real.bin")
        try FileManager.default.createSymbolicLink(atPath: dir.file("w.bin"), withDestinationPath: "real.bin")
        let g = try ONNXReader.read(path: try model(location: "w.bin", in: dir))
        #expect(g.initializers["w"]?.scalars(as: Float.self) == [1.5, -2])
    }

    @Test func offsetPastTheEndIsRefused() throws {
        let dir = TemporaryFolder()
        dir.write([UInt8](repeating: 0, count: 8), to: "w.bin")
        expectRefusal(try model(location: "w.bin", offset: "9", in: dir), "offset 9 is past the end of 'w.bin', which has 8 bytes")
    }

    @Test func lengthPastTheEndIsRefused() throws {
        let dir = TemporaryFolder()
        dir.write([UInt8](repeating: 0, count: 8), to: "w.bin")
        expectRefusal(try model(location: "w.bin", offset: "4", length: "8", in: dir),
                      "length 8 at offset 4 runs past the end of 'w.bin', which has 8 bytes")
        // Without a length the tensor takes the rest of the file, which is too short here.
        expectRefusal(try model(location: "w.bin", offset: "4", in: dir), "length 4 differs from the 8 bytes shape [2] of float32 needs")
    }

    @Test func missingDataFileAndBadNumbersAreNamed() throws {
        let dir = TemporaryFolder()
        expectRefusal(try model(location: "nope.bin", in: dir), "file 'nope.bin' cannot be opened")
        dir.write([UInt8](repeating: 0, count: 8), to: "w.bin")
        expectRefusal(try model(location: "w.bin", offset: "-1", in: dir), "offset '-1' is not a non-negative integer")
        expectRefusal(try model(location: "w.bin", length: "x", in: dir), "length 'x' is not a non-negative integer")
    }
}

extension ExternalDataTests {
    @Test func smallIntegerTensorsStayInlineWhateverTheThreshold() throws {
        // ONNX Runtime reads shape inputs while loading and cannot read them from external data.
        let dir = TemporaryFolder()
        var g = Self.model()
        g.initializers["shape"] = Tensor(shape: [2], scalars: [Int64(10), 100])
        g.initializers["big_ints"] = Tensor(shape: [200], scalars: (0..<200).map { Int64($0) })
        let report = try ONNXWriter.write(g, to: dir.file("m.onnx"), options: ONNXWriteOptions(externalData: .always, externalThreshold: 0))
        #expect(report.externalTensors == 4)
        let back = try ONNXReader.read(path: dir.file("m.onnx"))
        #expect(back.initializers["shape"]?.isMapped == false && back.initializers["big_ints"]?.isMapped == true)
    }
}
