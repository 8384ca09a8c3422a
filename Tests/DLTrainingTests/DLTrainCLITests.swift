import DLCheckpoint
import DLKit
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// `dltrain` end to end: crash safety, resuming, flag contradictions, bad data.
@Suite(.serialized)
struct DLTrainCLITests {
    static let data = TestPackage.fixture("training/mlp.data.safetensors")
    static let model = TestPackage.fixture("training/mlp.onnx")
    static let runFlags = ["--data", data, "--input", "x", "--target", "y", "--loss", "cross_entropy", "--batch-size", "12",
                           "--seed", "5", "--optimizer", "adam", "--lr", "0.003", "--weight-decay", "0.001"]

    static func tensors(_ path: String) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (n, t) in try SafeTensorsFile(path: path).tensors() { out[n] = t }
        return out
    }

    @Test func killedRunResumesBitIdentical() throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        let total = 600
        let full = try runProcess(tool, [Self.model] + Self.runFlags + ["--steps", String(total), "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")

        // The same run, killed with SIGKILL soon after its first checkpoint.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = [Self.model] + Self.runFlags + ["--steps", String(total), "--out", tmp.file("part.ckpt"), "--checkpoint-every", "7"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: tmp.file("part.ckpt")) && p.isRunning && Date() < deadline { usleep(2000) }
        usleep(20_000)
        let wasRunning = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(wasRunning, "dltrain finished before it could be killed; the test needs a longer run")
        let stopped = try #require(try Checkpoint(contentsOf: tmp.file("part.ckpt")).training)
        #expect(stopped.step > 0 && stopped.step < total && stopped.step % 7 == 0, "killed at step \(stopped.step)")

        // Resume with no flags but the data and the remaining steps.
        let resumed = try runProcess(tool, [tmp.file("part.ckpt"), "--data", Self.data, "--steps", String(total - stopped.step),
                                            "--out", tmp.file("part.ckpt")])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let a = try Self.tensors(tmp.file("full.ckpt")), b = try Self.tensors(tmp.file("part.ckpt"))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, t) in a { #expect(b[name].map { $0.bitwiseEqual(t) } == true, "\(name) differs") }
        #expect(try Checkpoint(contentsOf: tmp.file("full.ckpt")).training == Checkpoint(contentsOf: tmp.file("part.ckpt")).training)
    }

    /// `--threads N` sets the workers the kernels split over: a run on two threads gives the same
    /// bits each time; no threads is refused before anything is written.
    @Test func twoThreadsRepeatBitIdentical() throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        for name in ["a", "b"] {
            let r = try runProcess(tool, [Self.model] + Self.runFlags + ["--steps", "30", "--threads", "2", "--out", tmp.file("\(name).ckpt")])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let a = try Self.tensors(tmp.file("a.ckpt")), b = try Self.tensors(tmp.file("b.ckpt"))
        #expect(!a.isEmpty && a.keys.sorted() == b.keys.sorted())
        for (name, t) in a { #expect(b[name].map { $0.bitwiseEqual(t) } == true, "\(name) differs") }
        let none = try runProcess(tool, [Self.model] + Self.runFlags + ["--steps", "3", "--threads", "0", "--out", tmp.file("c.ckpt")])
        #expect(none.status != 0 && none.stderr.contains("--threads must be positive"), "\(none.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("c.ckpt")))
    }

    @Test func contradictionsAndBadInputFailWithoutWriting() throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        let first = try runProcess(tool, [Self.model] + Self.runFlags + ["--steps", "3", "--out", tmp.file("a.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        let before = try Data(contentsOf: tmp.url("a.ckpt"))
        let cases: [([String], String)] = [
            (["--lr", "0.1"], "--lr 0.1 contradicts the saved lr 0.003"),
            (["--optimizer", "sgd"], "holds adam state"),
            (["--loss", "mse"], "saved 'cross_entropy'"),
        ]
        for (flags, message) in cases {
            let r = try runProcess(tool, [tmp.file("a.ckpt"), "--data", Self.data, "--steps", "2", "--out", tmp.file("a.ckpt")] + flags)
            #expect(r.status == 1)
            #expect(r.stderr.contains(message), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        // --override lets a flag win.
        let o = try runProcess(tool, [tmp.file("a.ckpt"), "--data", Self.data, "--steps", "2", "--lr", "0.1", "--override", "--out", tmp.file("b.ckpt")])
        #expect(o.status == 0, "\(o.stderr)")
        #expect(try Checkpoint(contentsOf: tmp.file("b.ckpt")).training?.hyperparameters["lr"] == 0.1)
        // Data for another model, a target out of range.
        let wrong = try runProcess(tool, [tmp.file("a.ckpt"), "--data", TestPackage.fixture("training/cnn.data.safetensors"), "--steps", "2", "--out", tmp.file("a.ckpt")])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("data samples have shape [1, 8, 8]"), "\(wrong.stderr)")
        try SafeTensorsWriter.write([("x", Tensor(zeros: .float32, shape: [4, 12])), ("y", Tensor(shape: [4], scalars: [Int64(0), 1, 7, 2]))],
                                    metadata: [:], to: tmp.file("short.safetensors"))
        let short = try runProcess(tool, [tmp.file("a.ckpt"), "--data", tmp.file("short.safetensors"), "--steps", "2", "--out", tmp.file("a.ckpt")])
        #expect(short.status == 1)
        #expect(short.stderr.contains("resume with the same data"), "\(short.stderr)")
        let fresh = try runProcess(tool, [Self.model, "--data", tmp.file("short.safetensors"), "--loss", "cross_entropy", "--batch-size", "4",
                                          "--steps", "1", "--out", tmp.file("a.ckpt")])
        #expect(fresh.status == 1)
        #expect(fresh.stderr.contains("target 7"), "\(fresh.stderr)")
        try SafeTensorsWriter.write([("x", Tensor(zeros: .float32, shape: [4, 12])), ("y", Tensor(shape: [4], scalars: [Int64(0), 1, 7, 2]))],
                                    metadata: [:], to: tmp.file("bad.safetensors"))
        #expect(try Data(contentsOf: tmp.url("a.ckpt")) == before, "a failed run changed the checkpoint")
    }

    @Test func logLinePerEpochWhenNotATerminal() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(TestPackage.tool("dltrain"), [Self.model] + Self.runFlags + ["--epochs", "2", "--out", tmp.file("e.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("epoch 1 step 6 loss ") && lines[1].hasPrefix("epoch 2 step 12 loss "), "\(r.stderr)")
        let state = try #require(try Checkpoint(contentsOf: tmp.file("e.ckpt")).training)
        #expect(state.epoch == 2 && state.batchInEpoch == 0 && state.step == 12)
    }
}

extension DLTrainCLITests {
    /// PyTorch's step-20 weights and optimizer state through dlconvert, 20 steps of dltrain, and
    /// back out as model.pt + opt.pt: the weights match torch's step 40.
    @Test(arguments: ["sgd", "rmsprop", "adam", "adamw"])
    func dlconvertOptimizerStateInAndOut(kind: String) throws {
        let tmp = TemporaryFolder()
        let f = { (n: String) in TestPackage.fixture("training/\(n)") }
        let start = try runProcess(TestPackage.tool("dlconvert"), [f("mlp.\(kind).step20.pt"), tmp.file("start.ckpt"), "--graph", f("mlp.onnx"),
                                                                   "--optimizer-state", f("mlp.\(kind).opt20.pt")])
        #expect(start.status == 0, "\(start.stderr)")
        let train = try runProcess(TestPackage.tool("dltrain"), [tmp.file("start.ckpt"), "--data", f("mlp.data.safetensors"), "--loss", "cross_entropy",
                                                                 "--batch-size", "16", "--no-shuffle", "--steps", "20", "--out", tmp.file("end.ckpt")])
        #expect(train.status == 0, "\(train.stderr)")
        let back = try runProcess(TestPackage.tool("dlconvert"), [tmp.file("end.ckpt"), tmp.file("end.safetensors"), "--optimizer-out", tmp.file("opt.pt")])
        #expect(back.status == 0, "\(back.stderr)")
        let ours = try Self.tensors(tmp.file("end.safetensors"))
        let expected = try Self.tensors(f("mlp.\(kind).safetensors"))
        for (name, t) in ours {
            let e = try #require(expected["step40.\(name)"]).doubles()
            let diff = zip(t.doubles(), e).map { abs($0 - $1) }.max() ?? 0
            #expect(diff <= 1e-5 * (e.map(abs).max() ?? 1), "\(name)")
        }
        #expect(FileManager.default.fileExists(atPath: tmp.file("opt.pt")))
        // State for another model is refused and leaves no output behind.
        let wrong = try runProcess(TestPackage.tool("dlconvert"), [f("mlp.onnx"), tmp.file("wrong.ckpt"), "--optimizer-state", f("cnn.\(kind).opt20.pt")])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("fc1.weight"), "\(wrong.stderr)")
        #expect(!tmp.contents().contains { $0.hasPrefix("wrong") || $0.hasPrefix(".dlconvert") }, "\(tmp.contents())")
    }
}

extension DLTrainCLITests {
    @Test func nanLossStopsAndKeepsLastGoodState() throws {
        let tmp = TemporaryFolder()
        var ys = [Float](repeating: 0.5, count: 8 * 4)
        ys[5 * 4 + 1] = .nan
        try SafeTensorsWriter.write([("x", Tensor(shape: [8, 12], scalars: (0..<96).map { Float($0 % 7) / 7 })), ("y", Tensor(shape: [8, 4], scalars: ys))],
                                    metadata: [:], to: tmp.file("nan.safetensors"))
        let r = try runProcess(TestPackage.tool("dltrain"), [Self.model, "--data", tmp.file("nan.safetensors"), "--loss", "mse", "--batch-size", "4",
                                                             "--no-shuffle", "--optimizer", "sgd", "--lr", "0.1", "--steps", "5", "--out", tmp.file("n.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("the loss became nan at step 2") && r.stderr.contains("last good state (step 1)"), "\(r.stderr)")
        let state = try #require(try Checkpoint(contentsOf: tmp.file("n.ckpt")).training)
        #expect(state.step == 1)
        for (name, t) in try Self.tensors(tmp.file("n.ckpt")) where !name.hasPrefix("dlkit.") {
            #expect(t.doubles().allSatisfy { $0.isFinite }, "\(name)")
        }
    }
}
