import DLCheckpoint
import DLKit
import DLONNX
import DLSafeTensors
import DLTensor
import DLTestSupport
import DLTraining
import Foundation
import Testing

/// The epoch loop as a library: a Swift program builds the `TrainingLoop` that `dltrain` runs and
/// gets the same numbers; a loss per output; the shuffle buffer; the prefetcher.
@Suite(.serialized)
struct TrainingLoopTests {
    typealias CLI = DLTrainCallbackCLITests
    static let tool = TestPackage.tool("dltrain")

    /// A callback written in Swift: records what each epoch reported and stops after `stopAfter`.
    struct Recorder: TrainingCallback {
        var name: String { "recorder" }
        let stopAfter: Int
        var seen: [[String: Double]] = []
        mutating func epochEnded(_ event: inout EpochEnd) throws(TrainingError) {
            seen.append(event.logs)
            if event.epoch + 1 >= stopAfter { event.stopTraining = true }
        }
        var state: [String: String] { ["epochs": String(seen.count)] }
        mutating func restore(_ state: [String: String]) throws(TrainingError) {}
    }

    /// The loop built by hand in Swift (Trainer, callbacks, validation split, CSV log) ends bit for
    /// bit where `dltrain` with the same flags ends, CSV log included.
    @Test func aSwiftLoopEndsWhereDLTrainEnds() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, [CLI.model] + CLI.base + ["--optimizer", "sgd", "--lr", "0.2", "--momentum", "0.5", "--val-split", "0.25",
                                                                     "--metrics", "accuracy", "--reduce-lr-on-plateau", "patience=0,factor=0.5",
                                                                     "--epochs", "4", "--csv-log", tmp.file("cli.csv"), "--out", tmp.file("cli.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")

        let graph = try ONNXReader.read(path: CLI.model)
        let f = try SafeTensorsFile(path: CLI.data)
        let all = try Dataset(inputs: try f.tensor(named: "x"), targets: try f.tensor(named: "y"))
        let (train, validation) = try Trainer.split(all, validationFraction: 0.25)
        var config = OptimizerConfig(kind: .sgd)
        config.lr = 0.2
        config.momentum = 0.5
        let trainer = try Trainer(graph: graph, optimizer: Optimizer(config: config),
                                  options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 16),
                                  progress: TrainingProgress(seed: 0, shuffle: false))
        var loop = TrainingLoop(trainer: trainer, metrics: [.accuracy], validation: validation,
                                callbacks: [ReduceLROnPlateau(monitor: "val_loss", factor: 0.5, patience: 0), Recorder(stopAfter: 99)])
        loop.csvLog = try CSVLogFile(path: tmp.file("swift.csv"), fresh: true)
        try loop.check(train)
        var reports: [TrainingReport] = []
        var saves = 0
        try loop.run(train, epochs: 4, save: { _, _ in saves += 1 }, report: { reports.append($0) })
        #expect(saves == 1)
        #expect(reports.filter { if case .epochEnded = $0 { true } else { false } }.count == 4)
        let cli = try CLI.tensors(tmp.file("cli.ckpt"))
        for name in loop.trainer.trainable {
            #expect(cli[name]?.bitwiseEqual(loop.trainer.weights[name] ?? Tensor(scalar: Float(0))) == true, "\(name)")
        }
        #expect(try String(contentsOfFile: tmp.file("swift.csv"), encoding: .utf8) == String(contentsOfFile: tmp.file("cli.csv"), encoding: .utf8))
        let recorder = try #require(loop.callbacks.last as? Recorder)
        #expect(recorder.seen.count == 4 && recorder.seen[0]["val_accuracy"] != nil)
    }

    /// A custom callback stops the loop; a resumed loop continues from the saved snapshot.
    @Test func aCustomCallbackStopsTheLoop() throws {
        let d = try ParityTests.data("mlp")
        var loop = TrainingLoop(trainer: try ParityTests.trainer("mlp", .sgd), callbacks: [Recorder(stopAfter: 2)])
        var last: TrainingSnapshot?
        try loop.run(d, epochs: 10, save: { s, _ in last = s })
        #expect(loop.trainer.progress.epoch == 2)
        #expect(last?.callbacks["recorder"]?["epochs"] == "2")
    }

    /// The prefetcher hands out exactly the batches a step without it gathers: 3 epochs of a
    /// seeded shuffle, with and without it, end bit for bit equal.
    @Test(arguments: [nil, 5] as [Int?])
    func prefetchChangesNothing(buffer: Int?) throws {
        let d = try ParityTests.data("mlp")
        func run(_ prefetch: Bool) throws -> Trainer {
            let graph = try ONNXReader.read(path: CLI.model)
            var t = try Trainer(graph: graph, optimizer: Optimizer(config: ParityTests.hyper[.adam]!),
                                options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 10,
                                                        shuffleBuffer: buffer, prefetch: prefetch),
                                progress: TrainingProgress(seed: 11, shuffle: true))
            for _ in 0..<(3 * t.stepsPerEpoch(count: d.count)) { try t.step(d) }
            return t
        }
        let a = try run(true), b = try run(false)
        for name in a.trainable { #expect(a.weights[name]!.bitwiseEqual(b.weights[name]!), "\(name)") }
    }
}

/// `--shuffle-buffer N`: tf.data's shuffle buffer.
struct ShuffleBufferTests {
    static func trainer(buffer: Int?, seed: UInt64 = 3) throws -> Trainer {
        var t = try ParityTests.trainer("mlp", .sgd)
        let o = t.options
        t = try Trainer(graph: t.differentiator.graph, optimizer: t.optimizer,
                        options: TrainerOptions(inputName: o.inputName, loss: o.loss, batchSize: o.batchSize, shuffleBuffer: buffer),
                        progress: TrainingProgress(seed: seed, shuffle: true))
        return t
    }

    /// Every sample once per epoch; output k is one of samples 0 ..< k + N (what a buffer of N
    /// that refills in data order allows); a buffer of 1 keeps data order; each epoch and seed
    /// has its own order, and the same seed gives the same order.
    @Test(arguments: [1, 4, 16, 100, 1000])
    func orderIsABufferedShuffle(buffer: Int) throws {
        let t = try Self.trainer(buffer: buffer)
        let count = 100
        let o = t.order(epoch: 0, count: count)
        #expect(o.sorted() == Array(0..<count))
        for (k, i) in o.enumerated() { #expect(i < k + buffer, "output \(k) is sample \(i), outside a buffer of \(buffer)") }
        if buffer == 1 { #expect(o == Array(0..<count)) } else {
            #expect(o != t.order(epoch: 1, count: count))
            #expect(o != (try Self.trainer(buffer: buffer, seed: 4)).order(epoch: 0, count: count))
        }
        #expect(o == (try Self.trainer(buffer: buffer)).order(epoch: 0, count: count))
    }

    /// The first output is uniform over the first N samples, and a sample at the end of the buffer
    /// window comes out late: over 4000 seeds the counts sit within 5 sigma of tf.data's exact
    /// probabilities (1/N; and P(sample 0 still unread after k draws) = (1 - 1/N)^k).
    @Test func drawsAreUniformOverTheBuffer() throws {
        let n = 8, count = 40, trials = 4000
        var first = [Int](repeating: 0, count: n)
        var zeroLate = 0
        for seed in 0..<trials {
            let o = try Self.trainer(buffer: n, seed: UInt64(seed)).order(epoch: 0, count: count)
            first[o[0]] += 1
            if let p = o.firstIndex(of: 0), p >= 8 { zeroLate += 1 }
        }
        let p = 1 / Double(n)
        let sigma = (Double(trials) * p * (1 - p)).squareRoot()
        for c in first { #expect(abs(Double(c) - Double(trials) * p) < 5 * sigma, "\(first)") }
        let q = pow(1 - p, 8)
        let s2 = (Double(trials) * q * (1 - q)).squareRoot()
        #expect(abs(Double(zeroLate) - Double(trials) * q) < 5 * s2, "sample 0 unread after 8 draws \(zeroLate) times of \(trials)")
    }

    /// safetensors data stays a view of the file (batches copy their rows only, a validation split
    /// copies nothing), so data larger than memory streams from it.
    @Test func safetensorsDataIsMapped() throws {
        let d = try TrainingData.load(path: TestPackage.fixture("training/multi.data.safetensors"), inputName: "x", targetNames: ["reg", "label"])
        #expect(try d.inputs.isMapped && d.targets.isMapped && d.namedTargets["label"]?.isMapped == true)
        let (train, validation) = try Trainer.split(d, validationFraction: 0.25)
        #expect(try train.inputs.isMapped && validation.inputs.isMapped && validation.namedTargets["label"]?.isMapped == true)
        let copied = try d.batch(Array(36..<48))
        #expect(try validation.count == 12 && validation.inputs.bitwiseEqual(copied.inputs) && validation.targets.bitwiseEqual(copied.targets))
        #expect(validation.namedTargets["label"]?.bitwiseEqual(copied.namedTargets["label"] ?? Tensor(scalar: Float(0))) == true)
        #expect(try train.count == 36 && train.inputs.bitwiseEqual(d.batch(Array(0..<36)).inputs))
    }

    /// `dltrain --shuffle-buffer`: stopped mid-epoch and resumed, the run ends bit for bit where an
    /// uninterrupted one ends; its order differs from a full shuffle's.
    @Test func resumeContinuesTheSameOrder() throws {
        let tmp = TemporaryFolder()
        let tool = TestPackage.tool("dltrain")
        let m = DLTrainCallbackCLITests.model, d = DLTrainCallbackCLITests.data
        let flags = ["--data", d, "--input", "x", "--target", "y", "--loss", "cross_entropy", "--batch-size", "8", "--seed", "7",
                     "--optimizer", "adam", "--lr", "0.01"]
        let full = try runProcess(tool, [m] + flags + ["--shuffle-buffer", "6", "--steps", "20", "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        let part = try runProcess(tool, [m] + flags + ["--shuffle-buffer", "6", "--steps", "11", "--out", tmp.file("part.ckpt")])
        #expect(part.status == 0, "\(part.stderr)")
        let rest = try runProcess(tool, [tmp.file("part.ckpt"), "--data", d, "--steps", "9", "--out", tmp.file("part.ckpt")])
        #expect(rest.status == 0, "\(rest.stderr)")
        let a = try DLTrainCallbackCLITests.tensors(tmp.file("full.ckpt")), b = try DLTrainCallbackCLITests.tensors(tmp.file("part.ckpt"))
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name) differs after resuming") }
        let plain = try runProcess(tool, [m] + flags + ["--steps", "20", "--out", tmp.file("plain.ckpt")])
        #expect(plain.status == 0, "\(plain.stderr)")
        let c = try DLTrainCallbackCLITests.tensors(tmp.file("plain.ckpt"))
        #expect(c["fc1.weight"]?.bitwiseEqual(a["fc1.weight"] ?? Tensor(scalar: Float(0))) == false)
        let bad = try runProcess(tool, [m] + flags + ["--shuffle-buffer", "0", "--steps", "1", "--out", tmp.file("bad.ckpt")])
        #expect(bad.status == 1 && bad.stderr.contains("--shuffle-buffer must be a whole number >= 1"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("bad.ckpt")))
    }
}

/// A loss per output (`--loss reg=mse,cls=cross_entropy --loss-weights 1,0.5`), against torch
/// (fixtures/training/multi.*, scripts/fixtures/make_training_multi.py).
@Suite(.serialized)
struct MultiOutputLossTests {
    static let tool = TestPackage.tool("dltrain")
    static let model = TestPackage.fixture("training/multi.onnx")
    static let data = TestPackage.fixture("training/multi.data.safetensors")
    static let base = [model, "--data", data, "--loss", "reg=mse,cls=cross_entropy", "--target", "cls=label", "--batch-size", "16", "--no-shuffle"]

    /// torch's weights after 3 epochs (relative 1e-4) and its per-epoch total and per-output losses
    /// (`loss`, `reg_loss`, `cls_loss` in the CSV log, relative 1e-5), for two optimizers and weightings.
    @Test(arguments: [
        ("sgd", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--loss-weights", "1,0.5"]),
        ("adam", ["--optimizer", "adam", "--lr", "0.01", "--loss-weights", "cls=2,reg=0.2"]),
    ])
    func matchesTorch(name: String, flags: [String]) throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, Self.base + flags + ["--epochs", "3", "--csv-log", tmp.file("log.csv"), "--out", tmp.file("out.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try DLTrainCallbackCLITests.tensors(TestPackage.fixture("training/multi.trained.safetensors"))
        let ours = try DLTrainCallbackCLITests.tensors(tmp.file("out.ckpt"))
        #expect(try DLTrainCallbackCLITests.compareWeights(ours, expected, run: name) == 6)
        let lines = try String(contentsOfFile: tmp.file("log.csv"), encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "epoch,cls_loss,loss,reg_loss,lr", "\(lines)")
        let header = lines.first?.split(separator: ",").map(String.init) ?? []
        for column in ["loss", "reg_loss", "cls_loss"] {
            let i = try #require(header.firstIndex(of: column))
            let got = lines.dropFirst().map { Double($0.split(separator: ",")[i]) ?? .nan }
            let want = expected["\(name).epoch_\(column)"]?.doubles() ?? []
            #expect(got.count == want.count)
            for (g, w) in zip(got, want) { #expect(abs(g - w) <= 1e-5 * max(1, abs(w)), "\(column): \(got) vs torch \(want)") }
        }
    }

    /// Evaluation reports the weighted total and each output's loss; a run stopped mid-epoch and
    /// resumed ends bit for bit where an uninterrupted one ends, its log included.
    @Test func evaluateAndResume() throws {
        let tmp = TemporaryFolder()
        let flags = Self.base + ["--optimizer", "sgd", "--lr", "0.05", "--loss-weights", "1,0.5", "--val-split", "0.25"]
        let full = try runProcess(Self.tool, flags + ["--epochs", "4", "--csv-log", tmp.file("full.csv"), "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        let first = try runProcess(Self.tool, flags + ["--steps", "4", "--csv-log", tmp.file("part.csv"), "--out", tmp.file("part.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        let rest = try runProcess(Self.tool, [tmp.file("part.ckpt"), "--data", Self.data, "--steps", "8", "--out", tmp.file("part.ckpt")])
        #expect(rest.status == 0, "\(rest.stderr)")
        let a = try DLTrainCallbackCLITests.tensors(tmp.file("full.ckpt")), b = try DLTrainCallbackCLITests.tensors(tmp.file("part.ckpt"))
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name) differs after resuming") }
        let fullLog = try String(contentsOfFile: tmp.file("full.csv"), encoding: .utf8)
        #expect(fullLog == (try String(contentsOfFile: tmp.file("part.csv"), encoding: .utf8)))
        #expect(fullLog.hasPrefix("epoch,cls_loss,loss,reg_loss,val_cls_loss,val_loss,val_reg_loss,lr\n"), "\(fullLog)")

        let e = try runProcess(Self.tool, [tmp.file("full.ckpt"), "--evaluate", "--data", Self.data])
        #expect(e.status == 0, "\(e.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Double])
        #expect(Set(obj.keys) == ["loss", "reg_loss", "cls_loss"])
        #expect(abs((obj["loss"] ?? .nan) - ((obj["reg_loss"] ?? .nan) + 0.5 * (obj["cls_loss"] ?? .nan))) < 1e-9)
    }

    @Test(arguments: [
        (["--loss-weights", "1,0.5,2"], "--loss-weights gives 3 weights for 2 losses"),
        (["--loss-weights", "1,-1"], "weight 2 is not a number >= 0"),
        (["--loss", "reg=mse,cls=cross_entropy,box=mse"], "names output 'box', which the model does not have"),
        (["--target", "cls=nothing"], "no tensor 'nothing'"),
        (["--target", "label"], "give output=array pairs"),
        (["--loss", "reg=mse,cls=bogus"], "'bogus' for output 'cls' is not one of"),
    ])
    func badSettingsFailBeforeTraining(extra: [String], message: String) throws {
        let tmp = TemporaryFolder()
        var args = Self.base
        for (i, a) in extra.enumerated() where i % 2 == 0 {
            if let j = args.firstIndex(of: a) { args.removeSubrange(j...(j + 1)) }
        }
        let r = try runProcess(Self.tool, args + extra + ["--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("out.ckpt")))
    }
}
