import DLKit
import Foundation

/// One `dltrain` invocation as a value: the model, the data, the settings by their checkpoint
/// key, the optimizer's hyperparameters, and how long to train.
public struct TrainingRequest: Sendable {
    /// `.onnx`, Keras `.h5`/`.keras`, or `.ckpt` (whose training state the run resumes).
    public var model: String
    /// `.safetensors`, `.npz`, `.csv`, or an image folder (with the `image_size` setting).
    public var data: String
    /// Settings by key (`TrainingRun.settingFlags` lists them with their flags): these override
    /// a resumed checkpoint's only with `override`.
    public var settings: [String: String] = [:]
    /// `sgd`, `rmsprop`, `adam`, `adamw`; nil keeps the checkpoint's, or adam for a new run.
    public var optimizer: String?
    /// Hyperparameters by the key `OptimizerConfig.values` uses, with the flag that gave each.
    public var hyperparameters: [(key: String, flag: String, value: Double)] = []
    public var override = false
    public var skipBadImages = false
    /// Bytes of decoded images an image folder keeps in memory (nil: `ImageFolderSource.defaultCacheBytes`).
    public var imageCacheBytes: Int?
    public var epochs: Int?
    public var steps: Int?
    /// The checkpoint the run writes (atomically).
    public var out: String?
    public var checkpointEvery: Int?

    public init(model: String, data: String) {
        self.model = model
        self.data = data
    }
}

/// What a run tells its caller: a line about the data, or the loop's reports.
public enum TrainingRunEvent: Sendable {
    case note(String)
    case loop(TrainingReport)
}

/// `dltrain` as a library: a request's settings merged with a resumed checkpoint's, the data
/// loaded, the `TrainingLoop` built with its callbacks, schedule and logs, run, and checkpointed.
public enum TrainingRun {
    /// Settings saved in the checkpoint, and the flag that sets each.
    public static let settingFlags: [(key: String, flag: String)] = [
        ("input", "--input"), ("target", "--target"), ("output", "--output"), ("loss", "--loss"), ("loss_weights", "--loss-weights"),
        ("label_smoothing", "--label-smoothing"),
        ("batch_size", "--batch-size"), ("shuffle", "--no-shuffle/--seed"), ("seed", "--seed"), ("shuffle_buffer", "--shuffle-buffer"),
        ("drop_last", "--drop-last"),
        ("freeze", "--freeze"), ("input_columns", "--input-columns"), ("target_column", "--target-column"),
        ("val_data", "--val-data"), ("val_split", "--val-split"), ("metrics", "--metrics"), ("early_stopping", "--early-stopping"),
        ("checkpoint_best", "--checkpoint-best"), ("reduce_lr_on_plateau", "--reduce-lr-on-plateau"), ("lr_schedule", "--lr-schedule"),
        ("csv_log", "--csv-log"), ("accumulate", "--accumulate"), ("clip_grad_norm", "--clip-grad-norm"),
        ("log_dir", "--log-dir"), ("log_every", "--log-every"), ("image_size", "--image-size"),
    ]

    /// The model's loss and metrics on the request's data, in inference mode; trains nothing.
    public static func evaluate(_ request: TrainingRequest, report: (TrainingRunEvent) -> Void = { _ in }) throws(DLKitError) -> [String: Double] {
        let p = try prepare(request, evaluating: true, report: report)
        do { return try p.loop.trainer.evaluate(p.data, metrics: p.loop.metrics) } catch { throw .training(error) }
    }

    /// Trains as the request says and writes `out`. Returns the loop as it ended.
    @discardableResult
    public static func train(_ request: TrainingRequest, report: (TrainingRunEvent) -> Void = { _ in }) throws(DLKitError) -> TrainingLoop {
        guard let out = request.out else { throw .invalidArgument("--out is required (the checkpoint to write)") }
        var p = try prepare(request, evaluating: false, report: report)
        let settings = p.settings
        if let path = settings["checkpoint_best"], path == out { throw .invalidArgument("--checkpoint-best must name another file than --out") }
        do {
            try p.loop.check(p.data)
            if let path = settings["csv_log"] { p.loop.csvLog = try CSVLogFile(path: path, fresh: p.resumedStep == 0) }
            if let dir = settings["log_dir"] { p.loop.events = try TensorBoardWriter(directory: dir) }
        } catch { throw .wrapping(error) }
        p.loop.checkpointEvery = request.checkpointEvery
        func save(_ s: TrainingSnapshot, _ purpose: CheckpointPurpose) throws {
            let path = purpose == .best ? settings["checkpoint_best"] ?? out : out
            try TrainingSession.save(s.trainer, settings: settings, callbacks: s.callbacks, bestWeights: s.bestWeights, to: path)
        }
        do {
            try p.loop.run(p.data, epochs: request.epochs, steps: request.steps, save: save, report: { report(.loop($0)) })
        } catch let e as TrainingError where e.isNonFinite {
            throw .invalidArgument("\(e); \(out) holds the last good state (step \(p.loop.trainer.progress.step))")
        } catch { throw .wrapping(error) }
        return p.loop
    }

    struct Prepared {
        var loop: TrainingLoop
        var data: Dataset
        var settings: [String: String]
        var resumedStep: Int
    }

    /// The losses the settings name: one (`loss`), or one per output (`out1=mse,out2=cross_entropy`,
    /// with `loss_weights` as `1,0.5` in the same order or `out1=1,out2=0.5`, and `target` as
    /// `out1=y1,out2=y2`; an output's target array defaults to its own name).
    static func losses(_ settings: [String: String]) throws(DLKitError) -> (single: Loss, heads: [OutputLoss]) {
        guard let text = settings["loss"] else { throw .invalidArgument("--loss is required for a new run") }
        let known = "mse, l1, smooth_l1, huber, cross_entropy, nll, bce, bce_with_logits"
        func smoothed(_ l: Loss) throws(DLKitError) -> Loss {
            guard let ls = settings["label_smoothing"].flatMap(Double.init) else { return l }
            guard ls >= 0 && ls <= 1 else { throw .invalidArgument("--label-smoothing \(ls) must be in [0, 1]") }
            if case .crossEntropy = l { return .crossEntropy(labelSmoothing: ls) }
            return l
        }
        func isCrossEntropy(_ l: Loss) -> Bool { if case .crossEntropy = l { return true } else { return false } }
        guard text.contains("=") else {
            guard let l = Loss.named(text) else { throw .invalidArgument("--loss '\(text)' is not one of \(known)") }
            if settings["label_smoothing"] != nil && !isCrossEntropy(l) { throw .invalidArgument("--label-smoothing applies to cross_entropy only") }
            if settings["loss_weights"] != nil { throw .invalidArgument("--loss-weights needs one loss per output (--loss out1=mse,out2=...)") }
            return (try smoothed(l), [])
        }
        func pairs(_ s: String, _ flag: String) throws(DLKitError) -> [(String, String)] {
            var out: [(String, String)] = []
            for part in s.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard kv.count == 2, !kv[0].isEmpty, !kv[1].isEmpty else { throw .invalidArgument("\(flag) '\(s)': '\(part)' is not output=value") }
                guard !out.contains(where: { $0.0 == kv[0] }) else { throw .invalidArgument("\(flag) names output '\(kv[0])' twice") }
                out.append((kv[0], kv[1]))
            }
            return out
        }
        let named = try pairs(text, "--loss")
        var heads: [OutputLoss] = []
        for (output, name) in named {
            guard let l = Loss.named(name) else { throw .invalidArgument("--loss: '\(name)' for output '\(output)' is not one of \(known)") }
            heads.append(OutputLoss(output: output, target: output, loss: try smoothed(l)))
        }
        if settings["label_smoothing"] != nil && !heads.contains(where: { isCrossEntropy($0.loss) }) {
            throw .invalidArgument("--label-smoothing applies to cross_entropy only")
        }
        if let t = settings["target"] {
            guard t.contains("=") else { throw .invalidArgument("--target '\(t)': with a loss per output give output=array pairs, e.g. \(named[0].0)=y0") }
            for (output, array) in try pairs(t, "--target") {
                guard let i = heads.firstIndex(where: { $0.output == output }) else { throw .invalidArgument("--target names output '\(output)', which has no --loss") }
                heads[i].target = array
            }
        }
        if let w = settings["loss_weights"] {
            if w.contains("=") {
                for (output, v) in try pairs(w, "--loss-weights") {
                    guard let i = heads.firstIndex(where: { $0.output == output }) else { throw .invalidArgument("--loss-weights names output '\(output)', which has no --loss") }
                    guard let d = Double(v), d.isFinite, d >= 0 else { throw .invalidArgument("--loss-weights: '\(v)' for '\(output)' is not a number >= 0") }
                    heads[i].weight = d
                }
            } else {
                let values = w.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard values.count == heads.count else { throw .invalidArgument("--loss-weights gives \(values.count) weights for \(heads.count) losses") }
                for (i, v) in values.enumerated() {
                    guard let d = v, d.isFinite, d >= 0 else { throw .invalidArgument("--loss-weights '\(w)': weight \(i + 1) is not a number >= 0") }
                    heads[i].weight = d
                }
            }
        }
        return (heads[0].loss, heads)
    }

    static func prepare(_ request: TrainingRequest, evaluating: Bool, report: (TrainingRunEvent) -> Void) throws(DLKitError) -> Prepared {
        let checkpoint = request.model
        // The model and any saved run.
        let (graph, saved) = try TrainingSession.load(path: checkpoint)
        let old = saved?.settings ?? [:]

        // Settings: given, else the saved ones, else defaults; contradictions need override.
        var settings = old
        for (key, flag) in settingFlags {
            guard let v = request.settings[key] else { continue }
            if let o = old[key], o != v, !request.override {
                throw .invalidArgument("\(flag) gives \(key) '\(v)' but \(checkpoint) saved '\(o)'; pass --override to change it")
            }
            settings[key] = v
        }
        // Default: every input the model needs fed (a text model's input_ids,attention_mask), each from the data array of its name.
        let fed = graph.inputs.map(\.name).filter { !graph.initializers.contains($0) }
        settings["input"] = settings["input"] ?? (fed.isEmpty ? "x" : fed.joined(separator: ","))
        let (lossFn, heads) = try losses(settings)
        if heads.isEmpty { settings["target"] = settings["target"] ?? "y" }
        for h in heads where !graph.outputs.contains(where: { $0.name == h.output }) {
            throw .invalidArgument("--loss names output '\(h.output)', which the model does not have (outputs: \(graph.outputs.map(\.name).joined(separator: ", ")))")
        }
        guard let bs = (settings["batch_size"] ?? (evaluating ? "32" : nil)).flatMap(Int.init), bs > 0 else {
            throw .invalidArgument("--batch-size is required for a new run")
        }
        let shuffle = settings["shuffle"] != "false"
        let runSeed = settings["seed"].flatMap { UInt64($0) } ?? 0
        settings["shuffle"] = shuffle ? "true" : "false"
        settings["seed"] = String(runSeed)
        let frozen = settings["freeze"].map { $0.split(separator: "\n").map(String.init) } ?? []
        var shuffleBuffer: Int?
        if let b = settings["shuffle_buffer"] {
            guard let n = Int(b), n >= 1 else { throw .invalidArgument("--shuffle-buffer must be a whole number >= 1, got \(b)") }
            guard shuffle else { throw .invalidArgument("--shuffle-buffer shuffles; it excludes --no-shuffle") }
            shuffleBuffer = n
        }

        // The optimizer: saved, with the request checked against it, or a new one.
        var config: OptimizerConfig
        var slots: [String: [String: Tensor]] = [:]
        let names = OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")
        if let saved {
            do { config = try TrainingSession.config(from: saved) } catch { throw .training(error) }
            slots = saved.slots
            if let optimizer = request.optimizer, optimizer != config.kind.rawValue {
                guard request.override else {
                    throw .invalidArgument("--optimizer \(optimizer) but \(checkpoint) holds \(config.kind.rawValue) state; pass --override to start a new optimizer")
                }
                guard let k = OptimizerKind(rawValue: optimizer) else { throw .invalidArgument("--optimizer '\(optimizer)' is not one of \(names)") }
                config = OptimizerConfig(kind: k)
                slots = [:]
            }
        } else {
            let name = request.optimizer ?? "adam"
            guard let k = OptimizerKind(rawValue: name) else { throw .invalidArgument("--optimizer '\(name)' is not one of \(names)") }
            config = OptimizerConfig(kind: k)
        }
        let current = Dictionary(uniqueKeysWithValues: config.values.map { ($0.key, $0.value) })
        for (key, flag, v) in request.hyperparameters {
            guard let have = current[key] else { throw .invalidArgument("\(flag) does not apply to \(config.kind.rawValue)") }
            if saved != nil, !slots.isEmpty || saved?.optimizer == config.kind.rawValue, have != v, !request.override {
                throw .invalidArgument("\(flag) \(v) contradicts the saved \(key) \(have) in \(checkpoint); pass --override to change it")
            }
            config.set(key, v)
        }
        if let problem = config.problem { throw .invalidArgument("optimizer: \(problem)") }

        // Data, and the validation set.
        // --input a,b: the first input, and further ones a model with several inputs reads (same-named data arrays).
        let inputList = (settings["input"] ?? "x").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let inputName = inputList.first, !inputList.contains("") else { throw .invalidArgument("--input '\(settings["input"] ?? "")' names an empty input") }
        let moreInputs = Array(inputList.dropFirst())
        func loadData(_ path: String) throws(DLKitError) -> Dataset {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue, !TrainingData.isArrayFolder(path, inputName: inputName) {
                guard heads.isEmpty else { throw .invalidArgument("\(path) is an image folder, which has one target; a loss per output needs .safetensors or .npz data") }
                guard moreInputs.isEmpty else { throw .invalidArgument("\(path) is an image folder, which feeds one input; several inputs need .safetensors or .npz data") }
                guard let size = settings["image_size"] else { throw .invalidArgument("\(path) is an image folder: give --image-size H,W") }
                let hw = size.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard hw.count == 2, hw[0] > 0, hw[1] > 0 else { throw .invalidArgument("--image-size '\(size)' must be two positive numbers, H,W") }
                // Channels last when the model's input is [N, H, W, C] with C of 1 or 3 and not [N, C, H, W].
                let dims = graph.inputs.first { $0.name == inputName }?.type?.dims ?? []
                func fixed(_ d: Dim?) -> Int? { if case .fixed(let v)? = d { return v }; return nil }
                let last = dims.count == 4 && [1, 3].contains(fixed(dims[3]) ?? 0) && ![1, 3].contains(fixed(dims[1]) ?? 0)
                let channels = fixed(last ? dims.last : (dims.count == 4 ? dims[1] : nil)) == 1 ? 1 : 3
                let (d, classes, skipped): (Dataset, [String], [String])
                do {
                    (d, classes, skipped) = try TrainingData.loadImageFolder(path: path, height: hw[0], width: hw[1], channels: channels,
                                                                             channelsLast: last, skipBadImages: request.skipBadImages,
                                                                             cacheBytes: request.imageCacheBytes ?? ImageFolderSource.defaultCacheBytes)
                } catch { throw .training(error) }
                let shown = classes.prefix(10).joined(separator: ", ") + (classes.count > 10 ? ", ..." : "")
                let kept = (d.source as? ImageFolderSource)?.cachedCount ?? 0
                let memory = kept == d.count ? "all kept in memory" : "\(kept) kept in memory, the rest decoded each epoch"
                report(.note("\(path): \(d.count) images of \(classes.count) classes (\(shown)), \(memory)\(skipped.isEmpty ? "" : "; skipped \(skipped.count) that did not decode, the first \(skipped[0])")"))
                return d
            }
            do {
                return try TrainingData.load(path: path, inputName: inputName, inputNames: moreInputs, targetName: settings["target"] ?? "y",
                                         targetNames: heads.compactMap(\.target),
                                         inputColumns: settings["input_columns"].map { $0.split(separator: ",").map(String.init) } ?? [],
                                             targetColumn: settings["target_column"], integerTargets: lossFn.takesClassIndices)
            } catch { throw .training(error) }
        }
        var dataset = try loadData(request.data)
        var validation: Dataset?
        if evaluating {
            validation = nil
        } else if let v = settings["val_data"] {
            validation = try loadData(v)
        } else if let v = settings["val_split"] {
            guard let f = Double(v), f > 0, f < 1 else { throw .invalidArgument("--val-split must be in (0, 1), got \(v)") }
            do { (dataset, validation) = try Trainer.split(dataset, validationFraction: f) } catch { throw .training(error) }
        }

        do {
            let metricList = try Metric.list(settings["metrics"] ?? "")
            try Metric.check(metricList, loss: lossFn)
            var progress = TrainingProgress(seed: runSeed, shuffle: shuffle)
            if let saved {
                progress = TrainingSession.progress(from: saved, seed: runSeed, shuffle: shuffle)
                progress.shuffleSeed = shuffle ? runSeed : nil
            }
            let options = TrainerOptions(inputName: inputName, outputName: settings["output"], loss: lossFn, batchSize: bs,
                                         dropLast: settings["drop_last"] == "true", accumulate: settings["accumulate"].flatMap(Int.init) ?? 1,
                                         clipGradNorm: settings["clip_grad_norm"].flatMap(Double.init), outputLosses: heads,
                                         shuffleBuffer: shuffleBuffer)
            let trainer = try Trainer(graph: graph, optimizer: Optimizer(config: config, slots: slots), options: options, progress: progress, frozen: frozen)
            if !evaluating, let saved, saved.parameters != trainer.trainable, !slots.isEmpty {
                throw DLKitError.invalidArgument("\(checkpoint) saved optimizer state for parameters \(saved.parameters.joined(separator: ", ")); this run trains \(trainer.trainable.joined(separator: ", "))")
            }

            // Callbacks and the schedule, with their state when resuming.
            var callbacks: [any TrainingCallback] = []
            var early: EarlyStopping?
            if let spec = settings["early_stopping"] {
                let e = try EarlyStopping.parse(spec)
                early = e
                callbacks.append(e)
            }
            if settings["checkpoint_best"] != nil {
                callbacks.append(BestCheckpoint(monitor: early?.monitor ?? (validation != nil ? "val_loss" : "loss"), mode: early?.mode ?? .auto))
            }
            if let spec = settings["reduce_lr_on_plateau"] { callbacks.append(try ReduceLROnPlateau.parse(spec)) }
            let schedule = try settings["lr_schedule"].map { s throws(TrainingError) -> LRSchedule in try LRSchedule.parse(s) }
            if schedule != nil { settings["lr_base"] = settings["lr_base"] ?? "\(trainer.optimizer.config.lr)" }
            var loop = TrainingLoop(trainer: trainer, metrics: metricList, validation: validation, callbacks: callbacks,
                                    schedule: schedule, baseLR: settings["lr_base"].flatMap(Double.init))
            loop.logEvery = settings["log_every"].flatMap(Int.init)
            if let saved { try loop.restore(callbackStates: saved.callbacks, bestWeights: saved.bestWeights) }
            return Prepared(loop: loop, data: dataset, settings: settings, resumedStep: saved?.step ?? 0)
        } catch { throw .wrapping(error) }
    }
}
