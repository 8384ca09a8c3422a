import DLKit
import DLSafeTensors
import DLTestSupport
import Foundation
import Testing

/// StateDict over PyTorch files: load by content, select by key, convert, save, bind.
@Suite struct TorchStateDictTests {
    let checkpoint = URL(fileURLWithPath: TestPackage.fixture("torch/checkpoint.pt"))
    let mlp = URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx"))

    @Test(arguments: ["state_dict.pt", "legacy.pt", "python2.pt", "scripted.pt", "bigendian.pt"])
    func loadsEveryTorchFormatByContent(file: String) throws {
        let sd = try StateDict(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/\(file)")))
        let want = try SafeTensorsFile(path: TestPackage.fixture("torch/\(file.dropLast(3)).expected.safetensors"))
        #expect(Set(sd.names) == Set(want.names))
        for (name, t) in try want.tensors() { #expect(sd[name]?.bitwiseEqual(t) == true, "\(name)") }
    }

    @Test func keySelectsThePartOfANestedCheckpoint() throws {
        let model = try StateDict(contentsOf: checkpoint, key: "model")
        #expect(model.names == ["0.weight", "0.bias", "2.weight", "2.bias"])
        let all = try StateDict(contentsOf: checkpoint)
        #expect(all.names.first == "model.0.weight")
        #expect(all.names.contains("optimizer.state.3.max_exp_avg_sq"))
    }

    @Test func shardedSafetensorsLoadThroughTheirIndex() throws {
        let sd = try StateDict(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/sharded/model.safetensors.index.json")))
        // Shard by shard, each in its file's order (the safetensors writer puts F32 before F16).
        #expect(sd.names == ["embed.weight", "layers.0.weight", "lm_head.weight", "layers.1.weight"])
        #expect(sd["layers.1.weight"]?.dtype == .float16)
        #expect(sd["embed.weight"]?.isMapped == true)
    }

    @Test func shardedIndexCannotPointOutsideItsFolder() throws {
        let dir = TemporaryFolder()
        let json = #"{"metadata": {}, "weight_map": {"w": "../../etc/passwd"}}"#
        dir.write(Array(json.utf8), to: "model.safetensors.index.json")
        do {
            _ = try StateDict(contentsOf: dir.url("model.safetensors.index.json"))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("not a plain file name"))
        }
    }

    @Test(arguments: ["pt", "pth", "bin", "safetensors", "ckpt", "onnx"])
    func savesToEveryWeightsFormatAndReadsBackTheSame(ext: String) throws {
        let dir = TemporaryFolder()
        let sd = try StateDict(contentsOf: checkpoint, key: "model")
        try sd.write(to: dir.url("w.\(ext)"))
        let back = try StateDict(contentsOf: dir.url("w.\(ext)"))
        #expect(back.names == sd.names || Set(back.names) == Set(sd.names))
        for (name, t) in sd { #expect(back[name]?.bitwiseEqual(t) == true, "\(name)") }
        #expect(dir.contents() == ["w.\(ext)"])
    }

    @Test func convertsFloatingPointTensorsOnly() throws {
        let sd = try StateDict(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/state_dict.pt")))
        let half = try sd.converted(to: .float16)
        #expect(half["f32"]?.dtype == .float16)
        #expect(half["i64"]?.dtype == .int64)
        #expect(half["bool"]?.dtype == .bool)
        do {
            _ = try sd.converted(to: .int8)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("floating-point"))
        }
    }

    @Test func bindingChecksNamesAndShapesAndReportsThemAll() throws {
        let model = try Model(contentsOf: mlp)
        let own = StateDict(model.graph.initializers)
        let rebound = try own.bind(to: model)
        #expect(rebound.graph.initializers.names == model.graph.initializers.names)

        var wrong = own
        let first = own.names[0]
        wrong[first] = Tensor(zeros: .float32, shape: [1])
        wrong[own.names[1]] = nil
        wrong["extra.weight"] = Tensor(zeros: .float32, shape: [2])
        do {
            _ = try wrong.bind(to: model)
            Issue.record("expected an error")
        } catch {
            let m = "\(error)"
            #expect(m.contains("'\(first)': graph float32") && m.contains("weights float32[1]") && m.contains("1 missing ('\(own.names[1])')")
                && m.contains("1 extra, not in the graph ('extra.weight')"), "\(m)")
        }
        // Lenient binding: missing weights keep the model's own.
        var partial = own
        partial[own.names[1]] = nil
        _ = try partial.bind(to: model, verify: [])
    }

    @Test func torchWeightsConvertToONNXInitializersAndBack() throws {
        let dir = TemporaryFolder()
        try Converter.convert(from: checkpoint, to: dir.url("w.onnx"), key: "model")
        try Converter.convert(from: dir.url("w.onnx"), to: dir.url("w.pt"))
        let a = try StateDict(contentsOf: checkpoint, key: "model")
        let b = try StateDict(contentsOf: dir.url("w.pt"))
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name)") }
    }
}
