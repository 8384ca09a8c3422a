import DLKit
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// .tflite files through DLKit's front doors: `Model`, `dlconvert` (inspect, to ONNX run in ONNX
/// Runtime, verify) and `dlserve`, compared with tf.lite.Interpreter's outputs.
@Suite struct TFLiteCLITests {
    let dlconvert = TestPackage.tool("dlconvert")

    static func io(_ stem: String) throws -> (inputs: [String: Tensor], outputs: [String: Tensor]) {
        let f = try SafeTensorsFile(path: TestPackage.fixture("tflite/\(stem).io.safetensors"))
        var ins: [String: Tensor] = [:], outs: [String: Tensor] = [:]
        for (name, t) in try f.tensors() {
            if name.hasPrefix("input:") { ins[String(name.dropFirst(6))] = t }
            if name.hasPrefix("output:") { outs[String(name.dropFirst(7))] = t }
        }
        return (ins, outs)
    }

    @Test func modelLoadsATFLiteFileByItsBytes() throws {
        let m = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tflite/mobilenet.float.tflite")))
        #expect(m.format == .tflite)
        let (ins, outs) = try Self.io("mobilenet.float")
        let got = try m.run(ins)
        for (name, want) in outs {
            let g = try #require(got[name])
            #expect(allClose(g.doubles(), want.doubles(), rtol: 1e-4, atol: 1e-5))
        }
    }

    @Test func inspectDescribesATFLiteModel() throws {
        let r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("tflite/ops.float.tflite"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let j = try parseJSON(r.stdout)
        #expect(j["format"] == .string("tflite"))
        #expect(j["inputs"]?.arrayValue?.first?["name"] == .string("x"))
        #expect(Set((j["outputs"]?.arrayValue ?? []).compactMap { if case .string(let s)? = $0["name"] { s } else { nil } }) == ["y", "mean"])
    }

    /// dlconvert to ONNX; ONNX Runtime gives the interpreter's outputs; verify agrees.
    @Test(arguments: ["cnn.float", "mobilenet.fp16", "lstm.float", "ops.float", "cnn.dynamic"])
    func toONNXRunsInONNXRuntime(stem: String) throws {
        let dir = TemporaryFolder()
        let onnx = dir.file("\(stem).onnx")
        let source = TestPackage.fixture("tflite/\(stem).tflite")
        var r = try runProcess(dlconvert, [source, onnx])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, ["verify", source, onnx])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        guard TestPackage.hasPython else { return }
        let tolerance = stem.hasSuffix("dynamic") ? "rtol=0, atol=0.03 * np.max(np.abs(want))" : "rtol=1e-4, atol=1e-5"
        let script = """
            import sys, numpy as np, onnxruntime as ort
            from safetensors.numpy import load_file
            io = load_file(sys.argv[2])
            s = ort.InferenceSession(sys.argv[1])
            outs = [k[7:] for k in io if k.startswith("output:")]
            got = s.run(outs, {i.name: io["input:" + i.name] for i in s.get_inputs()})
            ok = True
            for g, n in zip(got, outs):
                want = io["output:" + n]
                ok = ok and np.allclose(g, want, \(tolerance))
            sys.exit(0 if ok else 1)
            """
        let o = try runProcess(TestPackage.python, ["-c", script, onnx, TestPackage.fixture("tflite/\(stem).io.safetensors")])
        #expect(o.status == 0, "ONNX Runtime: \(o.stdout) \(o.stderr)")
    }

    @Test func unsupportedOperatorsAreListedInOneLine() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [TestPackage.fixture("tflite/unsupported.tflite"), dir.file("u.onnx")])
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("unsupported.tflite: unsupported TFLite operators: CUSTOM 'FlexMatrixDeterminant', WHILE\n"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1 && dir.contents().isEmpty)
    }
}
