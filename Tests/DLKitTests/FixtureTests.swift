import DLKit
import DLSafeTensors
import DLTestSupport
import Foundation
import Testing

/// The fixture's reference inputs and ONNX Runtime outputs (`<name>.io.safetensors`).
func referenceIO(_ name: String) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
    let file = try SafeTensorsFile(path: TestPackage.fixture("models/\(name).io.safetensors"))
    var inputs: [String: Tensor] = [:], outputs: [String: Tensor] = [:]
    for (n, t) in try file.tensors() {
        if n.hasPrefix("input.") { inputs[String(n.dropFirst(6))] = t }
        if n.hasPrefix("output.") { outputs[String(n.dropFirst(7))] = t }
    }
    return (inputs, outputs)
}

func expectMatchesReference(_ got: [String: Tensor], _ expected: [String: Tensor], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(Set(got.keys) == Set(expected.keys), sourceLocation: sourceLocation)
    for (name, want) in expected {
        guard let have = got[name] else { continue }
        #expect(have.shape == want.shape, "\(name)", sourceLocation: sourceLocation)
        #expect(allClose(have.doubles(), want.doubles(), rtol: 1e-5, atol: 1e-6),
                "\(name): max relative error \(maxRelativeError(have.doubles(), want.doubles()))", sourceLocation: sourceLocation)
    }
}

struct FixtureTests {
    @Test(arguments: ["mlp", "cnn", "ops"])
    func modelMatchesONNXRuntime(_ name: String) throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/\(name).onnx")))
        let io = try referenceIO(name)
        expectMatchesReference(try model.run(io.inputs), io.outputs)
    }

    @Test(arguments: ["mlp", "cnn", "ops"])
    func checkpointRoundTripStillMatchesONNXRuntime(_ name: String) throws {
        let dir = TemporaryFolder()
        try Converter.convert(from: URL(fileURLWithPath: TestPackage.fixture("models/\(name).onnx")), to: dir.url("m.ckpt"))
        try Converter.convert(from: dir.url("m.ckpt"), to: dir.url("m2.onnx"))
        let io = try referenceIO(name)
        expectMatchesReference(try Model(contentsOf: dir.url("m.ckpt")).run(io.inputs), io.outputs)
        expectMatchesReference(try Model(contentsOf: dir.url("m2.onnx")).run(io.inputs), io.outputs)
    }

    @Test func stateDictReadsCheckpointSafetensorsAndONNXAlike() throws {
        let dir = TemporaryFolder()
        let onnx = URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))
        try Converter.convert(from: onnx, to: dir.url("m.ckpt"))
        try Converter.convert(from: onnx, to: dir.url("w.safetensors"))
        let a = try StateDict(contentsOf: onnx)
        let b = try StateDict(contentsOf: dir.url("m.ckpt"))
        let c = try StateDict(contentsOf: dir.url("w.safetensors"))
        #expect(a.names == b.names)
        #expect(Set(a.names) == Set(c.names))
        for (n, t) in a {
            #expect(b[n]?.bitwiseEqual(t) == true)
            #expect(c[n]?.bitwiseEqual(t) == true)
        }
    }

    @Test func selectedOutputsOnly() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/ops.onnx")))
        let io = try referenceIO("ops")
        let out = try model.run(io.inputs, outputs: ["gate"])
        #expect(Array(out.keys) == ["gate"])
    }

    @Test func formatIsDetectedFromContent() throws {
        let dir = TemporaryFolder()
        let onnx = URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))
        try Converter.convert(from: onnx, to: dir.url("m.ckpt"))
        try FileManager.default.copyItem(atPath: dir.file("m.ckpt"), toPath: dir.file("renamed.onnx"))
        #expect(try FileFormat.detect(path: onnx.path) == .onnx)
        #expect(try FileFormat.detect(path: dir.file("renamed.onnx")) == .checkpoint)
        #expect(try FileFormat.detect(path: TestPackage.fixture("safetensors/all_dtypes.safetensors")) == .safetensors)
        #expect(try FileFormat.detect(path: dir.write(Array("hello".utf8), to: "x.txt")) == .unknown)
    }
}

struct BadInputTests {
    @Test func nonModelFileIsNamedAndNoOutputIsCreated() throws {
        let dir = TemporaryFolder()
        let junk = dir.write(Array("this is not a model".utf8), to: "junk.onnx")
        do { try Converter.convert(from: URL(fileURLWithPath: junk), to: dir.url("out.ckpt")); Issue.record("expected an error") } catch {
            #expect(error.description == "\(junk): not a format DLKit recognises (ONNX, .ckpt, safetensors, PyTorch, Keras .h5/.weights.h5/.keras, TensorFlow SavedModel/checkpoint/TF.js, TFLite, OpenVINO .xml, Hugging Face folder)")
        }
        #expect(dir.contents() == ["junk.onnx"])
    }

    @Test func truncatedONNXIsNamedAndNoOutputIsCreated() throws {
        let dir = TemporaryFolder()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/cnn.onnx"))))
        let cut = dir.write(Array(bytes.prefix(bytes.count - 100)), to: "cut.onnx")
        do { try Converter.convert(from: URL(fileURLWithPath: cut), to: dir.url("out.ckpt")); Issue.record("expected an error") } catch {
            #expect(error.description.hasPrefix("\(cut): not an ONNX model"))
        }
        #expect(dir.contents() == ["cut.onnx"])
    }

    @Test func unknownOutputExtensionIsRefused() throws {
        let dir = TemporaryFolder()
        do {
            try Converter.convert(from: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx")), to: dir.url("out.xyz"))
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "\(dir.file("out.xyz")): unknown output extension; use .onnx, .ckpt, .tflite, .xml (OpenVINO IR), .safetensors, .pt, .pth, .bin, .h5, .weights.h5, FOLDER/config.json or FOLDER/model.json (TF.js)")
        }
        #expect(dir.contents().isEmpty)
    }

    @Test func wrongShapeAndTypeAreNamed() throws {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx")))
        do { _ = try model.run(["x": Tensor(zeros: .float32, shape: [1, 783])]); Issue.record("expected an error") } catch {
            #expect(error.description == "input 'x' has shape [1, 783], expected [batch,784]")
        }
        do { _ = try model.run(["x": Tensor(zeros: .float64, shape: [1, 784])]); Issue.record("expected an error") } catch {
            #expect(error.description == "input 'x' must be float32, got float64")
        }
        do { _ = try model.run([:]); Issue.record("expected an error") } catch {
            #expect(error.description == "input 'x' is missing")
        }
    }
}
