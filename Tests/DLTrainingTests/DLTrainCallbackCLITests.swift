import DLCheckpoint
import DLImage
import DLONNX
import DLTraining
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// `dltrain` with validation, metrics, callbacks, schedules and logs, end to end.
@Suite(.serialized)
struct DLTrainCallbackCLITests {
    static let data = TestPackage.fixture("training/mlp.data.safetensors")
    static let model = TestPackage.fixture("training/mlp.onnx")
    static let base = ["--data", data, "--input", "x", "--target", "y", "--loss", "cross_entropy", "--batch-size", "16", "--no-shuffle"]
    static let tool = TestPackage.tool("dltrain")

    static func tensors(_ path: String) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (n, t) in try SafeTensorsFile(path: path).tensors() { out[n] = t }
        return out
    }

    /// Checks the weights `run.<param>` of a torch reference (not its `run.epoch_*` series) against
    /// ours within relative 1e-4 (of each parameter's largest magnitude); returns how many it compared.
    static func compareWeights(_ ours: [String: Tensor], _ expected: [String: Tensor], run name: String) throws -> Int {
        var compared = 0
        for (key, want) in expected where key.hasPrefix(name + ".") && !key.contains(".epoch_") {
            compared += 1
            let param = String(key.dropFirst(name.count + 1))
            let got = try #require(ours[param], "\(param)").doubles()
            let w = want.doubles()
            let scale = max(w.map(abs).max() ?? 1, 1e-12)
            let diff = zip(got, w).map { abs($0 - $1) }.max() ?? 0
            #expect(diff / scale <= 1e-4, "\(name) \(param): relative difference \(diff / scale)")
        }
        return compared
    }

    /// The fixture MLP trained with a schedule, gradient accumulation or clipping ends at torch's
    /// weights (relative 1e-4), and the CSV log's lr column is torch's rate of each epoch, exactly.
    @Test(arguments: [
        ("sgd_step", ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--lr-schedule", "step:step_size=2,gamma=0.5"]),
        ("adam_onecycle", ["--optimizer", "adam", "--lr", "0.01", "--lr-schedule", "onecycle:max_lr=0.02,total_steps=20"]),
        ("adamw_cosine", ["--optimizer", "adamw", "--lr", "0.01", "--lr-schedule", "cosine:t_max=3,eta_min=0.001"]),
        ("sgd_accumulate_clip", ["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--batch-size", "24", "--accumulate", "2",
                                 "--clip-grad-norm", "0.5", "--epochs", "3"]),
        ("adam_clip", ["--optimizer", "adam", "--lr", "0.01", "--clip-grad-norm", "0.1", "--epochs", "3"]),
    ])
    func scheduledTrainingMatchesTorch(name: String, flags: [String]) throws {
        let tmp = TemporaryFolder()
        let epochs = flags.contains("--epochs") ? [] : ["--epochs", "5"]
        let r = try runProcess(Self.tool, [Self.model] + Self.base + flags + epochs + ["--csv-log", tmp.file("log.csv"), "--out", tmp.file("out.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        let expected = try Self.tensors(TestPackage.fixture("training/mlp.schedules.safetensors"))
        let ours = try Self.tensors(tmp.file("out.ckpt"))
        #expect(try Self.compareWeights(ours, expected, run: name) == 6)
        let lines = try String(contentsOfFile: tmp.file("log.csv"), encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "epoch,loss,lr")
        let lrs = lines.dropFirst().map { Double($0.split(separator: ",").last ?? "") ?? .nan }
        #expect(lrs == (expected["\(name).epoch_lr"]?.doubles() ?? []))
    }

    /// Validation split, metrics, early stopping, plateau and best checkpoint together; killed
    /// between epochs and resumed, the run ends bit for bit where the uninterrupted one ends.
    @Test func callbacksResumeBitIdentical() throws {
        let tmp = TemporaryFolder()
        let flags = Self.base + ["--optimizer", "sgd", "--lr", "0.2", "--val-split", "0.25", "--metrics", "accuracy,f1",
                                 "--early-stopping", "monitor=val_loss,patience=4", "--reduce-lr-on-plateau", "patience=1,factor=0.5",
                                 "--batch-size", "8"]
        let full = try runProcess(Self.tool, [Self.model] + flags + ["--epochs", "8", "--csv-log", tmp.file("full.csv"),
                                                                      "--checkpoint-best", tmp.file("best.ckpt"), "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        #expect(FileManager.default.fileExists(atPath: tmp.file("best.ckpt")))
        let first = try runProcess(Self.tool, [Self.model] + flags + ["--epochs", "3", "--csv-log", tmp.file("part.csv"),
                                                                       "--checkpoint-best", tmp.file("best2.ckpt"), "--out", tmp.file("part.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try runProcess(Self.tool, [tmp.file("part.ckpt"), "--data", Self.data, "--epochs", "5", "--out", tmp.file("part.ckpt")])
        #expect(second.status == 0, "\(second.stderr)")
        let a = try Self.tensors(tmp.file("full.ckpt")), b = try Self.tensors(tmp.file("part.ckpt"))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name) differs after resuming") }
        let fullLog = try String(contentsOfFile: tmp.file("full.csv"), encoding: .utf8)
        let partLog = try String(contentsOfFile: tmp.file("part.csv"), encoding: .utf8)
        #expect(fullLog == partLog)
        #expect(fullLog.hasPrefix("epoch,accuracy,f1,loss,val_accuracy,val_f1,val_loss,lr\n"), "\(fullLog)")
        let saved = try #require(try Checkpoint(contentsOf: tmp.file("full.ckpt")).training)
        #expect(saved.callbacks["early_stopping"]?["wait"] != nil)
        #expect(saved.callbacks["reduce_lr_on_plateau"]?["bad_epochs"] != nil)
    }

    /// Stopped inside an epoch and resumed, the epoch's training-batch metrics cover all its
    /// batches: the CSV log (training and validation metrics) equals the uninterrupted run's.
    @Test func metricsResumeMidEpochBitIdentical() throws {
        let tmp = TemporaryFolder()
        // 48 training samples in batches of 8: 6 steps an epoch; the first run stops after 9.
        let flags = Self.base + ["--optimizer", "sgd", "--lr", "0.2", "--val-split", "0.25", "--batch-size", "8",
                                 "--metrics", "accuracy,top5_accuracy,precision,recall,f1"]
        let full = try runProcess(Self.tool, [Self.model] + flags + ["--steps", "24", "--csv-log", tmp.file("full.csv"), "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        let first = try runProcess(Self.tool, [Self.model] + flags + ["--steps", "9", "--csv-log", tmp.file("part.csv"), "--out", tmp.file("part.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        let saved = try #require(try Checkpoint(contentsOf: tmp.file("part.ckpt")).training)
        #expect(saved.callbacks["epoch"]?["metrics_counts"]?.hasPrefix("24,") == true, "\(saved.callbacks)")
        let second = try runProcess(Self.tool, [tmp.file("part.ckpt"), "--data", Self.data, "--steps", "15", "--out", tmp.file("part.ckpt")])
        #expect(second.status == 0, "\(second.stderr)")
        let fullLog = try String(contentsOfFile: tmp.file("full.csv"), encoding: .utf8)
        #expect(fullLog.split(separator: "\n").count == 5, "\(fullLog)")
        #expect(try String(contentsOfFile: tmp.file("part.csv"), encoding: .utf8) == fullLog)
        let a = try Self.tensors(tmp.file("full.ckpt")), b = try Self.tensors(tmp.file("part.ckpt"))
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name) differs after resuming") }
    }

    @Test func earlyStoppingStopsAndRestoresTheBestWeights() throws {
        let tmp = TemporaryFolder()
        // A learning rate far too high: the validation loss gets worse and training stops early.
        let r = try runProcess(Self.tool, [Self.model] + Self.base + ["--optimizer", "sgd", "--lr", "5", "--val-split", "0.25", "--epochs", "30",
                                                                       "--early-stopping", "monitor=val_loss,patience=2,restore_best=true",
                                                                       "--checkpoint-best", tmp.file("best.ckpt"), "--out", tmp.file("out.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("early stopping"), "\(r.stderr)")
        let state = try #require(try Checkpoint(contentsOf: tmp.file("out.ckpt")).training)
        #expect(state.epoch < 30)
        // The restored weights are the best epoch's, which is also what the best checkpoint holds.
        let best = try Self.tensors(tmp.file("best.ckpt")), out = try Self.tensors(tmp.file("out.ckpt"))
        for name in ["fc1.weight", "fc3.bias"] { #expect(best[name]?.bitwiseEqual(out[name] ?? Tensor(scalar: Float(0))) == true, "\(name)") }
    }

    @Test func evaluatePrintsLossAndMetricsAsJSON() throws {
        let r = try runProcess(Self.tool, [Self.model, "--evaluate", "--data", Self.data, "--input", "x", "--target", "y",
                                           "--loss", "cross_entropy", "--metrics", "accuracy,f1"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double])
        let ref = try #require(CallbackTests.reference["evaluate_mlp"] as? [String: Double])
        #expect(Set(obj.keys) == ["loss", "accuracy", "f1"])
        for (k, v) in ref { #expect(abs((obj[k] ?? .nan) - v) <= 1e-5 * max(1, abs(v)), "\(k): \(obj[k] ?? .nan), reference \(v)") }
    }

    @Test(arguments: [
        (["--metrics", "accuracy,bogus"], "unknown metric 'bogus'"),
        (["--loss", "mse", "--target", "x", "--metrics", "accuracy"], "needs a classification loss"),
        (["--val-split", "1.5"], "--val-split must be in (0, 1)"),
        (["--early-stopping", "monitor=val_accuracy"], "monitor 'val_accuracy' is not computed"),
        (["--lr-schedule", "cosine:t_max=0"], "t_max must be a whole number >= 1"),
        (["--lr-schedule", "step:step_size=2", "--reduce-lr-on-plateau", "patience=1"], "give one"),
        (["--reduce-lr-on-plateau", "factor=2"], "factor must be in (0, 1)"),
    ])
    func badSettingsFailBeforeTraining(extra: [String], message: String) throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, [Self.model] + Self.base + extra + ["--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("out.ckpt")))
    }
}

/// `dltrain --data FOLDER`: image folders, and what a bad image does.
@Suite(.serialized)
struct DLTrainImageFolderTests {
    static let tool = TestPackage.tool("dltrain")
    static let model = TestPackage.fixture("images/cnn.onnx")

    static func folderWithBadImage(_ tmp: TemporaryFolder) throws -> String {
        let dir = tmp.file("data")
        try FileManager.default.copyItem(atPath: TestPackage.fixture("images/folder"), toPath: dir)
        try FileManager.default.copyItem(atPath: TestPackage.fixture("images/bad/truncated.png"), toPath: "\(dir)/dog/4.png")
        return dir
    }

    @Test func trainsOnAnImageFolder() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, [Self.model, "--data", TestPackage.fixture("images/folder"), "--image-size", "8,8", "--loss", "cross_entropy",
                                           "--batch-size", "4", "--epochs", "2", "--metrics", "accuracy", "--out", tmp.file("out.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("8 images of 3 classes (cat, dog, zebra), all kept in memory"), "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: tmp.file("out.ckpt")))
    }

    /// The folder's images kept in memory (all of them, the first 3, none: the rest decoded by
    /// the batches that ask for them) are bit for bit the rows of the folder decoded all at once,
    /// so training on the folder ends where training on the preloaded pixels ends (shuffled,
    /// with a validation split, which takes the last images: kept ones and decoded ones).
    @Test(arguments: [nil, 3, 0])
    func streamedFolderTrainsAsThePreloadedPixels(keptImages: Int?) throws {
        let folder = TestPackage.fixture("images/folder")
        let imageBytes = 3 * 8 * 8 * MemoryLayout<Float>.stride
        let (streamed, classes, skipped) = try TrainingData.loadImageFolder(
            path: folder, height: 8, width: 8, cacheBytes: keptImages.map { $0 * imageBytes + imageBytes - 1 } ?? ImageFolderSource.defaultCacheBytes)
        #expect(streamed.isStreamed && classes == ["cat", "dog", "zebra"] && skipped.isEmpty)
        #expect((streamed.source as? ImageFolderSource)?.cachedCount == keptImages ?? streamed.count)
        let (pixels, labels, _) = try ImageFolder(path: folder).load(height: 8, width: 8)
        #expect(try streamed.inputs.bitwiseEqual(pixels) && streamed.targets.bitwiseEqual(labels))
        #expect(try streamed.batch([5, 0, 7]).inputs.bitwiseEqual(Dataset(inputs: pixels, targets: labels).batch([5, 0, 7]).inputs))
        let (_, tail) = try Trainer.split(streamed, validationFraction: 0.25)
        let (_, preloadedTail) = try Trainer.split(try Dataset(inputs: pixels, targets: labels), validationFraction: 0.25)
        #expect(try tail.batch([1, 0]).inputs.bitwiseEqual(preloadedTail.batch([1, 0]).inputs))
        let graph = try ONNXReader.read(path: Self.model)
        func train(_ data: Dataset) throws -> Trainer {
            let (t, v) = try Trainer.split(data, validationFraction: 0.25)
            let trainer = try Trainer(graph: graph, optimizer: Optimizer(config: OptimizerConfig(kind: .adam)),
                                      options: TrainerOptions(inputName: "x", loss: .crossEntropy(labelSmoothing: 0), batchSize: 4),
                                      progress: TrainingProgress(seed: 3, shuffle: true))
            var loop = TrainingLoop(trainer: trainer, metrics: [.accuracy], validation: v)
            try loop.run(t, epochs: 3, save: { _, _ in })
            return loop.trainer
        }
        let a = try train(streamed), b = try train(try Dataset(inputs: pixels, targets: labels))
        for name in a.trainable { #expect(a.weights[name]?.bitwiseEqual(b.weights[name] ?? Tensor(scalar: Float(0))) == true, "\(name)") }
    }

    /// `dltrain` on an image folder stopped inside an epoch and resumed ends bit for bit where an
    /// uninterrupted run ends (shuffled batches, prefetch, metrics, CSV log).
    @Test func imageFolderResumesMidEpochBitIdentical() throws {
        let tmp = TemporaryFolder()
        let flags = ["--data", TestPackage.fixture("images/folder"), "--image-size", "8,8", "--loss", "cross_entropy", "--batch-size", "2",
                     "--seed", "5", "--val-split", "0.25", "--metrics", "accuracy"]
        let full = try runProcess(Self.tool, [Self.model] + flags + ["--steps", "9", "--csv-log", tmp.file("full.csv"), "--out", tmp.file("full.ckpt")])
        #expect(full.status == 0, "\(full.stderr)")
        let first = try runProcess(Self.tool, [Self.model] + flags + ["--steps", "4", "--csv-log", tmp.file("part.csv"), "--out", tmp.file("part.ckpt")])
        #expect(first.status == 0, "\(first.stderr)")
        // The resumed half decodes every batch; the first half read the pixels kept at the start.
        let second = try runProcess(Self.tool, [tmp.file("part.ckpt"), "--data", TestPackage.fixture("images/folder"), "--steps", "5",
                                                "--image-cache-mb", "0", "--out", tmp.file("part.ckpt")])
        #expect(second.stderr.contains("8 images of 3 classes (cat, dog, zebra), 0 kept in memory, the rest decoded each epoch"), "\(second.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        let a = try DLTrainCallbackCLITests.tensors(tmp.file("full.ckpt")), b = try DLTrainCallbackCLITests.tensors(tmp.file("part.ckpt"))
        #expect(!a.isEmpty && a.keys.sorted() == b.keys.sorted())
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name) differs after resuming") }
        let log = try String(contentsOfFile: tmp.file("full.csv"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == 4, "\(log)")
        #expect(try String(contentsOfFile: tmp.file("part.csv"), encoding: .utf8) == log)
    }

    /// An image that stops decoding after the start (replaced on disk) fails the step naming the
    /// file when it is decoded again; kept in memory, its pixels of the start go on being read.
    @Test func anImageBrokenDuringTheRunNamesTheFile() throws {
        let tmp = TemporaryFolder()
        let dir = tmp.file("data")
        try FileManager.default.copyItem(atPath: TestPackage.fixture("images/folder"), toPath: dir)
        let (streamed, _, _) = try TrainingData.loadImageFolder(path: dir, height: 8, width: 8, cacheBytes: 0)
        let (kept, _, _) = try TrainingData.loadImageFolder(path: dir, height: 8, width: 8)
        let before = try kept.batch(Array(0..<kept.count)).inputs
        try FileManager.default.removeItem(atPath: "\(dir)/dog/3.png")
        try FileManager.default.copyItem(atPath: TestPackage.fixture("images/bad/truncated.png"), toPath: "\(dir)/dog/3.png")
        let message: String
        do { _ = try streamed.batch(Array(0..<streamed.count)); message = "" } catch { message = "\(error)" }
        #expect(message.hasPrefix("\(dir)/dog/3.png: malformed image"), "\(message)")
        #expect(try kept.batch(Array(0..<kept.count)).inputs.bitwiseEqual(before))
    }

    @Test func aNegativeImageCacheIsRefused() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, [Self.model, "--data", TestPackage.fixture("images/folder"), "--image-size", "8,8", "--loss", "cross_entropy",
                                           "--image-cache-mb=-1", "--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status != 0 && r.stderr.contains("--image-cache-mb -1 must be 0 or more MiB"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.file("out.ckpt")))
    }

    @Test func aBadImageStopsTheRunBeforeTheFirstStep() throws {
        let tmp = TemporaryFolder()
        let dir = try Self.folderWithBadImage(tmp)
        let r = try runProcess(Self.tool, [Self.model, "--data", dir, "--image-size", "8,8", "--loss", "cross_entropy",
                                           "--batch-size", "4", "--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("dltrain: \(dir)/dog/4.png: malformed image"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: tmp.file("out.ckpt")))
    }

    @Test func skipBadImagesCountsAndGoesOn() throws {
        let tmp = TemporaryFolder()
        let dir = try Self.folderWithBadImage(tmp)
        let r = try runProcess(Self.tool, [Self.model, "--data", dir, "--image-size", "8,8", "--loss", "cross_entropy", "--skip-bad-images",
                                           "--batch-size", "4", "--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("8 images of 3 classes") && r.stderr.contains("skipped 1 that did not decode"), "\(r.stderr)")
    }

    @Test func anImageFolderNeedsASize() throws {
        let tmp = TemporaryFolder()
        let r = try runProcess(Self.tool, [Self.model, "--data", TestPackage.fixture("images/folder"), "--loss", "cross_entropy",
                                           "--batch-size", "4", "--epochs", "1", "--out", tmp.file("out.ckpt")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("give --image-size H,W"), "\(r.stderr)")
    }
}
