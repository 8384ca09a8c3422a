import DLKit
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// The command-line tools run as a user runs them: exit codes, stdout, stderr, files left behind.
struct CLITests {
    let dlconvert = TestPackage.tool("dlconvert")
    let dlserve = TestPackage.tool("dlserve")
    let mlp = TestPackage.fixture("models/mlp.onnx")

    @Test func convertThereAndBackThenInspect() throws {
        let dir = TemporaryFolder()
        var r = try runProcess(dlconvert, [mlp, dir.file("m.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, [dir.file("m.ckpt"), dir.file("m2.onnx")])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, ["inspect", dir.file("m2.onnx"), "--json"])
        #expect(r.status == 0)
        let json = try parseJSON(r.stdout)
        #expect(json["format"] == .string("onnx"))
        #expect(json["parameters"] == .int(669_706))
        #expect(json["ops"] == .object([("Gemm", .int(3)), ("Relu", .int(2))]))
        #expect(dir.contents() == ["m.ckpt", "m2.onnx"])
    }

    @Test func inspectPrintsText() throws {
        let r = try runProcess(dlconvert, ["inspect", TestPackage.fixture("models/cnn.onnx")])
        #expect(r.status == 0)
        #expect(r.stdout.contains("x: float32 [batch, 3, 32, 32]"))
        #expect(r.stdout.contains("Conv: 3"))
    }

    @Test func badInputGivesOneLineAndNonZeroExitAndNoFile() throws {
        let dir = TemporaryFolder()
        let junk = dir.write(Array("junk".utf8), to: "junk.onnx")
        let r = try runProcess(dlconvert, [junk, dir.file("out.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: \(junk): not a format DLKit recognises (ONNX, .ckpt, safetensors, PyTorch, Keras .h5/.weights.h5/.keras, TensorFlow SavedModel/checkpoint/TF.js, TFLite, OpenVINO .xml, Hugging Face folder)\n")
        #expect(r.stdout.isEmpty)
        #expect(dir.contents() == ["junk.onnx"])
    }

    @Test func unknownOpModelIsRefusedWithEveryOpNamed() throws {
        let dir = TemporaryFolder()
        var g = try Model.loadGraph(path: mlp).0
        g.nodes[0].opType = "FancyGemm"
        g.nodes[1].opType = "FancySwish"
        g.nodes[3].opType = "FancySwish"
        try Converter.write(g, to: dir.url("u.onnx"))
        let r = try runProcess(dlconvert, [dir.file("u.onnx"), dir.file("u.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: \(dir.file("u.onnx")): unsupported ops: FancyGemm, FancySwish (x2)\n")
        #expect(!FileManager.default.fileExists(atPath: dir.file("u.ckpt")))
    }

    @Test func serveAnswersEveryLineInOrderAndExitsZero() throws {
        let zeros = Array(repeating: "0", count: 784).joined(separator: ",")
        let input = """
            {"id":"a","inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":[\(zeros)]}]}
            not json
            {"id":"b","method":"metadata"}
            {"id":"c","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}
            {"id":"d","method":"ready"}

            """
        let r = try runProcess(dlserve, [mlp], input: input)
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 4 + 1)
        #expect(lines[0].hasPrefix(#"{"id":"a","model_name":"mlp","outputs":[{"name":"y","shape":[1,10],"datatype":"FP32","data":["#))
        #expect(lines[1].hasPrefix(#"{"id":null,"error":"the request is not valid JSON"#))
        #expect(lines[2].hasPrefix(#"{"id":"b","name":"mlp""#))
        #expect(lines[3] == #"{"id":"c","error":"input 'x' has shape [1, 3], expected [batch,784]"}"#)
        #expect(lines[4] == #"{"id":"d","ready":true}"#)
        #expect(r.stderr.contains("loaded 'mlp'"))
    }

    @Test func serveRefusesAMissingModelAtStart() throws {
        let r = try runProcess(dlserve, ["/nonexistent/model.onnx"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("dlserve: /nonexistent/model.onnx: cannot open"))
        #expect(r.stdout.isEmpty)
    }

    @Test func serveLimitsLineLength() throws {
        let r = try runProcess(dlserve, [mlp, "--max-line-bytes", "10"], input: #"{"id":"long","inputs":[]}"# + "\n")
        #expect(r.status == 0)
        #expect(r.stdout.contains("over the server's line limit of 10"))
    }
}
