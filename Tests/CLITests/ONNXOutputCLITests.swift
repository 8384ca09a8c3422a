import DLKit
import DLTestSupport
import Foundation
import Testing

/// `dlconvert` ONNX output options, `--graph`, and `verify`, run as a user runs them.
struct ONNXOutputCLITests {
    let dlconvert = TestPackage.tool("dlconvert")
    let cnn = TestPackage.fixture("models/cnn.onnx")
    let mlp = TestPackage.fixture("models/mlp.onnx")

    @Test func ckptToONNXWithExternalDataAndAnotherOpset() throws {
        let dir = TemporaryFolder()
        var r = try runProcess(dlconvert, [cnn, dir.file("c.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, [dir.file("c.ckpt"), dir.file("c.onnx"), "--external-data", "--external-threshold", "256", "--opset", "11"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(dir.contents() == ["c.ckpt", "c.onnx", "c.onnx.data"])
        let g = try Model.loadGraph(path: dir.file("c.onnx")).0
        #expect(g.metadata.onnxOpset == 11 && g.metadata.irVersion == 6 && g.metadata.producerName == "dlkit")
        #expect(g.initializers["conv1.weight"]?.isMapped == true)
        r = try runProcess(dlconvert, ["verify", cnn, dir.file("c.onnx"), "--input-shape", "x=2,3,32,32"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasPrefix("probs [2, 10]: max abs diff"))
        #expect(r.stdout.hasSuffix("ok: outputs agree within rtol 0.0001, atol 1e-05\n"))
    }

    @Test func blockedOpsetIsOneLineAndLeavesNoFile() throws {
        let dir = TemporaryFolder()
        // ops.onnx reshapes with a constant shape, fine everywhere; mlp and cnn too. Refuse a
        // target outside what ONNX Runtime loads instead.
        let r = try runProcess(dlconvert, [mlp, dir.file("m.onnx"), "--opset", "30"])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: \(dir.file("m.onnx")): opset ai.onnx 30: DLKit writes opsets 7 to 26 (the newest ONNX Runtime 1.31 loads)\n")
        #expect(dir.contents().isEmpty)
    }

    @Test func optionsThatNeedOthersAreRefused() throws {
        let dir = TemporaryFolder()
        var r = try runProcess(dlconvert, [mlp, dir.file("m.onnx"), "--external-threshold", "10"])
        #expect(r.status != 0 && r.stderr.contains("--external-threshold needs --external-data"))
        r = try runProcess(dlconvert, [mlp, dir.file("m.onnx"), "--allow-missing"])
        #expect(r.status != 0 && r.stderr.contains("--allow-missing needs --graph"))
        r = try runProcess(dlconvert, [mlp, dir.file("m.ckpt"), "--opset", "13"])
        #expect(r.status == 1 && r.stderr == "dlconvert: \(dir.file("m.ckpt")): --opset and --external-data apply to .onnx output only\n")
        #expect(dir.contents().isEmpty)
    }

    @Test func weightsOntoAGraphStrictlyThenWithAllowMissing() throws {
        let dir = TemporaryFolder()
        var w = StateDict()
        let g = try Model.loadGraph(path: mlp).0
        for (n, t) in g.initializers where n != "fc3.bias" { w[n] = t }
        try w.write(safetensorsTo: dir.url("w.safetensors"))
        var r = try runProcess(dlconvert, [dir.file("w.safetensors"), dir.file("out.onnx"), "--graph", mlp])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: \(dir.file("w.safetensors")) do not fit \(mlp): 1 missing ('fc3.bias'); --allow-missing keeps the graph's values for missing tensors\n")
        #expect(dir.contents() == ["w.safetensors"])
        r = try runProcess(dlconvert, [dir.file("w.safetensors"), dir.file("out.onnx"), "--graph", mlp, "--allow-missing"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "dlconvert: kept the graph's own values for 1 tensor the weights lack: fc3.bias\n")
        r = try runProcess(dlconvert, ["verify", mlp, dir.file("out.onnx"), "--input-shape", "x=3,784", "--json"])
        #expect(r.status == 0)
        let json = try parseJSON(r.stdout)
        #expect(json["ok"] == .bool(true))
    }

    @Test func verifyExitsOneWhenOutputsDifferAndNamesDynamicInputs() throws {
        let dir = TemporaryFolder()
        var g = try Model.loadGraph(path: mlp).0
        g.initializers["fc3.bias"] = Tensor(shape: [10], scalars: [Float](repeating: 1, count: 10))
        try Converter.write(g, to: dir.url("changed.onnx"))
        var r = try runProcess(dlconvert, ["verify", mlp, dir.file("changed.onnx"), "--input-shape", "x=1,784", "--seed", "3"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("OVER TOLERANCE") && r.stdout.contains("FAILED: 1 of 1 outputs differ"))
        r = try runProcess(dlconvert, ["verify", mlp, dir.file("changed.onnx")])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: input 'x' has dynamic dims float32[batch,784]; give them with --input-shape x=1,784\n")
        r = try runProcess(dlconvert, ["verify", mlp, mlp, "--input-shape", "x"])
        #expect(r.status == 1 && r.stderr.contains("is not NAME=DIMS"))
    }
}
