import ArgumentParser
import DLKit
import Foundation

/// `dltrain CKPT --data DATA ... --out OUT.ckpt`: trains a model, resuming the run a checkpoint holds.
struct DLTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dltrain",
        abstract: "Train a model (ONNX, Keras .h5/.keras, or .ckpt), or resume the training run a .ckpt holds.",
        discussion: """
            When CKPT holds training state (written by dltrain or by dlconvert --optimizer-state),
            the optimizer, its hyperparameters and the run's settings come from it and the flags
            may be omitted; a flag that contradicts the saved state is an error unless --override.
            --steps and --epochs count on from where CKPT stopped. OUT is written atomically (every
            --checkpoint-every steps and at the end), so killing dltrain leaves the last checkpoint
            intact, and resuming from it ends bit for bit where an uninterrupted run ends.

            Examples:
              dltrain model.onnx --data train.safetensors --input x --target y --loss cross_entropy \\
                  --batch-size 32 --epochs 3 --optimizer adamw --lr 1e-3 --out run.ckpt --checkpoint-every 100
              dltrain run.ckpt --data train.safetensors --epochs 2 --out run.ckpt
              dltrain model.onnx --data train.safetensors --val-split 0.2 --metrics accuracy,f1 --loss cross_entropy \
                  --batch-size 32 --epochs 50 --early-stopping monitor=val_loss,patience=3,restore_best=true \
                  --lr-schedule cosine:t_max=50 --csv-log log.csv --checkpoint-best best.ckpt --out run.ckpt
              dltrain run.ckpt --evaluate --data test.safetensors --metrics accuracy,precision,recall
            """)

    @Argument(help: "The model to train: .onnx, Keras .h5/.keras, or .ckpt (a .ckpt with training state resumes its run).")
    var checkpoint: String

    @Option(help: "Training data: .safetensors or .npz (input and target arrays by name), .csv, or a folder of one subfolder of PNG/JPEG images per class (with --image-size).")
    var data: String
    @Option(help: "Image folders: the size images are resized to, H,W.")
    var imageSize: String?
    @Flag(help: "Image folders: leave out images that do not decode (counted on stderr) instead of stopping.")
    var skipBadImages = false

    @Option(help: "The model input fed with the data, and the data array holding it (default: saved, else the model's first input).")
    var input: String?
    @Option(help: "The data array (or with .csv, see --target-column) holding the targets (default: saved, else 'y').")
    var target: String?
    @Option(help: "CSV: comma-separated input column names (default: every column but the target).")
    var inputColumns: String?
    @Option(help: "CSV: the target column.")
    var targetColumn: String?
    @Option(help: "The model output the loss reads (default: the first).")
    var output: String?

    @Option(help: "mse, l1, smooth_l1, huber, cross_entropy, nll, bce, bce_with_logits.")
    var loss: String?
    @Option(help: "Label smoothing for cross_entropy.")
    var labelSmoothing: Double?
    @Option(help: "Samples per batch.")
    var batchSize: Int?
    @Option(help: "Train this many more epochs.")
    var epochs: Int?
    @Option(help: "Train this many more steps.")
    var steps: Int?

    @Option(help: "sgd, rmsprop, adam, adamw (default adam for a new run).")
    var optimizer: String?
    @Option var lr: Double?
    @Option var momentum: Double?
    @Flag(inversion: .prefixedNo, help: "SGD: Nesterov momentum.") var nesterov: Bool?
    @Option var dampening: Double?
    @Option var weightDecay: Double?
    @Option(help: "Adam/AdamW: beta1,beta2.") var betas: String?
    @Option var eps: Double?
    @Option(help: "RMSprop smoothing constant.") var alpha: Double?
    @Flag(inversion: .prefixedNo, help: "RMSprop: centered.") var centered: Bool?
    @Flag(inversion: .prefixedNo, help: "Adam/AdamW: AMSGrad.") var amsgrad: Bool?

    @Flag(help: "Batches in data order (no shuffling).") var noShuffle = false
    @Option(help: "Seed of the shuffle and of dropout.") var seed: UInt64?
    @Flag(help: "Drop the last incomplete batch of each epoch.") var dropLast = false
    @Option(help: ArgumentHelp("Leave parameters matching this pattern unchanged (repeatable), e.g. 'encoder.*'.", valueName: "PATTERN"))
    var freeze: [String] = []

    @Option(help: "Validation data (the format of --data, same array names); evaluated after every epoch.")
    var valData: String?
    @Option(help: "Hold out this last fraction of --data (before shuffling) for validation, as Keras's validation_split.")
    var valSplit: Double?
    @Option(help: "Metrics per epoch, on the training batches and the validation set: accuracy, top5_accuracy, precision, recall, f1 (macro), mae, mse, rmse, auc (binary).")
    var metrics: String?
    @Flag(help: "Print the loss and --metrics of the model on --data as one JSON object and train nothing.")
    var evaluate = false
    @Option(help: "Keras EarlyStopping: monitor=M,patience=P,min_delta=D,mode=min|max|auto,restore_best=true|false.")
    var earlyStopping: String?
    @Option(help: "Write the model to this .ckpt whenever the monitored value improves (monitor: early stopping's, else val_loss, else loss).")
    var checkpointBest: String?
    @Option(help: "torch ReduceLROnPlateau: monitor=M,mode=min|max|auto,factor=F,patience=P,threshold=T,cooldown=C,min_lr=L.")
    var reduceLrOnPlateau: String?
    @Option(help: "torch lr_scheduler: step:step_size=S,gamma=G | multistep:milestones=a;b,gamma=G | exponential:gamma=G | cosine:t_max=T,eta_min=E | onecycle:max_lr=X,total_steps=N | linear_warmup:steps=N[,start_factor=F].")
    var lrSchedule: String?
    @Option(help: "Append one row per epoch (Keras CSVLogger layout: epoch, values by name, lr) to this file.")
    var csvLog: String?

    @Option(help: "Write TensorBoard event files here: epoch_<value> per epoch (loss, metrics, val_..., lr).")
    var logDir: String?
    @Option(help: "With --log-dir, also batch_loss and batch_lr every N optimizer steps.")
    var logEvery: Int?
    @Option(help: "Sum the gradients of K batches (each loss divided by K) per optimizer step.")
    var accumulate: Int?
    @Option(help: "Scale the gradients so their joint 2-norm is at most X (torch's clip_grad_norm_).")
    var clipGradNorm: Double?

    @Option(help: "The checkpoint to write.") var out: String?
    @Option(help: "Also write OUT every K steps.") var checkpointEvery: Int?
    @Flag(help: "Let flags change settings the checkpoint saved.") var override = false

    func validate() throws {
        if evaluate {
            if epochs != nil || steps != nil || out != nil { throw ValidationError("--evaluate trains nothing: drop --epochs, --steps and --out") }
            return
        }
        if out == nil { throw ValidationError("--out is required (the checkpoint to write)") }
        if (epochs == nil) == (steps == nil) { throw ValidationError("give exactly one of --epochs and --steps") }
        if valData != nil && valSplit != nil { throw ValidationError("--val-data and --val-split exclude each other") }
        if let e = epochs, e < 0 { throw ValidationError("--epochs must be 0 or more") }
        if let s = steps, s < 0 { throw ValidationError("--steps must be 0 or more") }
        if let b = batchSize, b <= 0 { throw ValidationError("--batch-size must be positive") }
        if let k = checkpointEvery, k <= 0 { throw ValidationError("--checkpoint-every must be positive") }
        if noShuffle && seed != nil { throw ValidationError("--no-shuffle and --seed exclude each other") }
    }

    func run() throws {
        do { try train() } catch let e as DLTrainError {
            FileHandle.standardError.write(Data("dltrain: \(e.message)\n".utf8))
            throw ExitCode(1)
        } catch let e as DLKitError {
            FileHandle.standardError.write(Data("dltrain: \(e)\n".utf8))
            throw ExitCode(1)
        } catch let e as TrainingError {
            FileHandle.standardError.write(Data("dltrain: \(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Settings saved in the checkpoint, and the flag that sets each.
    static let settingFlags: [(key: String, flag: String)] = [
        ("input", "--input"), ("target", "--target"), ("output", "--output"), ("loss", "--loss"), ("label_smoothing", "--label-smoothing"),
        ("batch_size", "--batch-size"), ("shuffle", "--no-shuffle/--seed"), ("seed", "--seed"), ("drop_last", "--drop-last"),
        ("freeze", "--freeze"), ("input_columns", "--input-columns"), ("target_column", "--target-column"),
        ("val_data", "--val-data"), ("val_split", "--val-split"), ("metrics", "--metrics"), ("early_stopping", "--early-stopping"),
        ("checkpoint_best", "--checkpoint-best"), ("reduce_lr_on_plateau", "--reduce-lr-on-plateau"), ("lr_schedule", "--lr-schedule"),
        ("csv_log", "--csv-log"), ("accumulate", "--accumulate"), ("clip_grad_norm", "--clip-grad-norm"),
        ("log_dir", "--log-dir"), ("log_every", "--log-every"), ("image_size", "--image-size"),
    ]

    func train() throws {
        // The model and any saved run.
        let (graph, saved) = try TrainingSession.load(path: checkpoint)
        let old = saved?.settings ?? [:]

        // Settings: flags, else the saved ones, else defaults; contradictions need --override.
        var given: [String: String] = [:]
        if let input { given["input"] = input }
        if let target { given["target"] = target }
        if let output { given["output"] = output }
        if let loss { given["loss"] = loss }
        if let labelSmoothing { given["label_smoothing"] = String(labelSmoothing) }
        if let batchSize { given["batch_size"] = String(batchSize) }
        if noShuffle { given["shuffle"] = "false" }
        if let seed { given["seed"] = String(seed); given["shuffle"] = "true" }
        if dropLast { given["drop_last"] = "true" }
        if !freeze.isEmpty { given["freeze"] = freeze.joined(separator: "\n") }
        if let inputColumns { given["input_columns"] = inputColumns }
        if let targetColumn { given["target_column"] = targetColumn }
        if let valData { given["val_data"] = valData }
        if let valSplit { given["val_split"] = String(valSplit) }
        if let metrics { given["metrics"] = metrics }
        if let earlyStopping { given["early_stopping"] = earlyStopping }
        if let checkpointBest { given["checkpoint_best"] = checkpointBest }
        if let reduceLrOnPlateau { given["reduce_lr_on_plateau"] = reduceLrOnPlateau }
        if let lrSchedule { given["lr_schedule"] = lrSchedule }
        if let csvLog { given["csv_log"] = csvLog }
        if let accumulate { given["accumulate"] = String(accumulate) }
        if let logDir { given["log_dir"] = logDir }
        if let imageSize { given["image_size"] = imageSize }
        if let logEvery { given["log_every"] = String(logEvery) }
        if let clipGradNorm { given["clip_grad_norm"] = String(clipGradNorm) }
        var settings = old
        for (key, flag) in Self.settingFlags {
            guard let v = given[key] else { continue }
            if let o = old[key], o != v, !override {
                throw DLTrainError("\(flag) gives \(key) '\(v)' but \(checkpoint) saved '\(o)'; pass --override to change it")
            }
            settings[key] = v
        }
        settings["input"] = settings["input"] ?? graph.inputs.first?.name ?? "x"
        settings["target"] = settings["target"] ?? "y"
        guard let lossName = settings["loss"] else { throw DLTrainError("--loss is required for a new run") }
        guard var lossFn = Loss.named(lossName) else {
            throw DLTrainError("--loss '\(lossName)' is not one of mse, l1, smooth_l1, huber, cross_entropy, nll, bce, bce_with_logits")
        }
        if let ls = settings["label_smoothing"].flatMap(Double.init) {
            guard case .crossEntropy = lossFn else { throw DLTrainError("--label-smoothing applies to cross_entropy only") }
            guard ls >= 0 && ls <= 1 else { throw DLTrainError("--label-smoothing \(ls) must be in [0, 1]") }
            lossFn = .crossEntropy(labelSmoothing: ls)
        }
        guard let bs = (settings["batch_size"] ?? (evaluate ? "32" : nil)).flatMap(Int.init), bs > 0 else {
            throw DLTrainError("--batch-size is required for a new run")
        }
        let shuffle = settings["shuffle"] != "false"
        let runSeed = settings["seed"].flatMap { UInt64($0) } ?? 0
        settings["shuffle"] = shuffle ? "true" : "false"
        settings["seed"] = String(runSeed)
        let frozen = settings["freeze"].map { $0.split(separator: "\n").map(String.init) } ?? []

        // The optimizer: saved, with flags checked against it, or a new one from the flags.
        var config: OptimizerConfig
        var slots: [String: [String: Tensor]] = [:]
        if let saved {
            config = try TrainingSession.config(from: saved)
            slots = saved.slots
            if let optimizer, optimizer != config.kind.rawValue {
                guard override else {
                    throw DLTrainError("--optimizer \(optimizer) but \(checkpoint) holds \(config.kind.rawValue) state; pass --override to start a new optimizer")
                }
                guard let k = OptimizerKind(rawValue: optimizer) else { throw DLTrainError("--optimizer '\(optimizer)' is not one of sgd, rmsprop, adam, adamw") }
                config = OptimizerConfig(kind: k)
                slots = [:]
            }
        } else {
            let name = optimizer ?? "adam"
            guard let k = OptimizerKind(rawValue: name) else { throw DLTrainError("--optimizer '\(name)' is not one of sgd, rmsprop, adam, adamw") }
            config = OptimizerConfig(kind: k)
        }
        var flags: [(String, String, Double)] = []
        if let lr { flags.append(("lr", "--lr", lr)) }
        if let momentum { flags.append(("momentum", "--momentum", momentum)) }
        if let nesterov { flags.append(("nesterov", "--nesterov", nesterov ? 1 : 0)) }
        if let dampening { flags.append(("dampening", "--dampening", dampening)) }
        if let weightDecay { flags.append(("weight_decay", "--weight-decay", weightDecay)) }
        if let betas {
            let parts = betas.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let b1 = parts[0], let b2 = parts[1] else { throw DLTrainError("--betas '\(betas)' must be two numbers, e.g. 0.9,0.999") }
            flags += [("beta1", "--betas", b1), ("beta2", "--betas", b2)]
        }
        if let eps { flags.append(("eps", "--eps", eps)) }
        if let alpha { flags.append(("alpha", "--alpha", alpha)) }
        if let centered { flags.append(("centered", "--centered", centered ? 1 : 0)) }
        if let amsgrad { flags.append(("amsgrad", "--amsgrad", amsgrad ? 1 : 0)) }
        let current = Dictionary(uniqueKeysWithValues: config.values.map { ($0.key, $0.value) })
        for (key, flag, v) in flags {
            guard let have = current[key] else { throw DLTrainError("\(flag) does not apply to \(config.kind.rawValue)") }
            if saved != nil, !slots.isEmpty || saved?.optimizer == config.kind.rawValue, have != v, !override {
                throw DLTrainError("\(flag) \(v) contradicts the saved \(key) \(have) in \(checkpoint); pass --override to change it")
            }
            config.set(key, v)
        }
        if let problem = config.problem { throw DLTrainError("optimizer: \(problem)") }

        // Data, and the validation set.
        let inputName = settings["input"] ?? "x"
        func loadData(_ path: String) throws -> Dataset {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
                guard let size = settings["image_size"] else { throw DLTrainError("\(path) is an image folder: give --image-size H,W") }
                let hw = size.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard hw.count == 2, hw[0] > 0, hw[1] > 0 else { throw DLTrainError("--image-size '\(size)' must be two positive numbers, H,W") }
                // Channels last when the model's input is [N, H, W, C] with C of 1 or 3 and not [N, C, H, W].
                let dims = graph.inputs.first { $0.name == inputName }?.type?.dims ?? []
                func fixed(_ d: Dim?) -> Int? { if case .fixed(let v)? = d { return v }; return nil }
                let last = dims.count == 4 && [1, 3].contains(fixed(dims[3]) ?? 0) && ![1, 3].contains(fixed(dims[1]) ?? 0)
                let channels = fixed(last ? dims.last : (dims.count == 4 ? dims[1] : nil)) == 1 ? 1 : 3
                let (d, classes, skipped) = try TrainingData.loadImageFolder(path: path, height: hw[0], width: hw[1], channels: channels,
                                                                            channelsLast: last, skipBadImages: skipBadImages)
                FileHandle.standardError.write(Data("\(path): \(d.count) images of \(classes.count) classes (\(classes.prefix(10).joined(separator: ", "))\(classes.count > 10 ? ", ..." : ""))\(skipped.isEmpty ? "" : "; skipped \(skipped.count) that did not decode, the first \(skipped[0])")\n".utf8))
                return d
            }
            return try TrainingData.load(path: path, inputName: inputName, targetName: settings["target"] ?? "y",
                                  inputColumns: settings["input_columns"].map { $0.split(separator: ",").map(String.init) } ?? [],
                                  targetColumn: settings["target_column"], integerTargets: lossFn.takesClassIndices)
        }
        var dataset = try loadData(data)
        var validation: Dataset?
        if evaluate {
            validation = nil
        } else if let v = settings["val_data"] {
            validation = try loadData(v)
        } else if let v = settings["val_split"] {
            guard let f = Double(v), f > 0, f < 1 else { throw DLTrainError("--val-split must be in (0, 1), got \(v)") }
            (dataset, validation) = try Trainer.split(dataset, validationFraction: f)
        }
        let metricList = try Metric.list(settings["metrics"] ?? "")
        try Metric.check(metricList, loss: lossFn)

        var progress = TrainingProgress(seed: runSeed, shuffle: shuffle)
        if let saved {
            progress = TrainingSession.progress(from: saved, seed: runSeed, shuffle: shuffle)
            progress.shuffleSeed = shuffle ? runSeed : nil
        }
        let options = TrainerOptions(inputName: inputName, outputName: settings["output"], loss: lossFn, batchSize: bs, dropLast: settings["drop_last"] == "true",
                                     accumulate: settings["accumulate"].flatMap(Int.init) ?? 1, clipGradNorm: settings["clip_grad_norm"].flatMap(Double.init))
        var trainer = try Trainer(graph: graph, optimizer: Optimizer(config: config, slots: slots), options: options, progress: progress, frozen: frozen)
        if evaluate {
            let values = try trainer.evaluate(dataset, metrics: metricList)
            let body = values.keys.sorted().map { "\"\($0)\":\(values[$0].map { $0.isFinite ? "\($0)" : "null" } ?? "null")" }
            print("{" + body.joined(separator: ",") + "}")
            return
        }
        guard let out else { throw DLTrainError("--out is required") }
        if let saved, saved.parameters != trainer.trainable, !slots.isEmpty {
            throw DLTrainError("\(checkpoint) saved optimizer state for parameters \(saved.parameters.joined(separator: ", ")); this run trains \(trainer.trainable.joined(separator: ", "))")
        }
        try trainer.check(dataset)
        if let validation { try trainer.check(validation) }

        // Callbacks and the schedule, with their state when resuming.
        var callbacks: [any TrainingCallback] = []
        var early: EarlyStopping?
        if let spec = settings["early_stopping"] {
            let e = try EarlyStopping.parse(spec)
            early = e
            callbacks.append(e)
        }
        if let path = settings["checkpoint_best"] {
            guard path != out else { throw DLTrainError("--checkpoint-best must name another file than --out") }
            callbacks.append(BestCheckpoint(monitor: early?.monitor ?? (validation != nil ? "val_loss" : "loss"), mode: early?.mode ?? .auto))
        }
        if let spec = settings["reduce_lr_on_plateau"] { callbacks.append(try ReduceLROnPlateau.parse(spec)) }
        let schedule = try settings["lr_schedule"].map { s throws -> LRSchedule in try LRSchedule.parse(s) }
        if schedule != nil && settings["reduce_lr_on_plateau"] != nil {
            throw DLTrainError("--lr-schedule and --reduce-lr-on-plateau both set the learning rate; give one")
        }
        if schedule != nil { settings["lr_base"] = settings["lr_base"] ?? "\(trainer.optimizer.config.lr)" }
        let baseLR = settings["lr_base"].flatMap(Double.init) ?? trainer.optimizer.config.lr
        let baseMomentum = trainer.optimizer.config.kind == .adam || trainer.optimizer.config.kind == .adamw ? trainer.optimizer.config.beta1 : trainer.optimizer.config.momentum
        var available: Set<String> = ["loss", "lr"]
        for m in metricList { available.insert(m.rawValue) }
        if validation != nil { for k in Array(available) where k != "lr" { available.insert("val_" + k) } }
        for c in callbacks {
            let monitor = (c as? EarlyStopping)?.monitor ?? (c as? BestCheckpoint)?.monitor ?? (c as? ReduceLROnPlateau)?.monitor ?? "loss"
            guard available.contains(monitor) else {
                throw DLTrainError("monitor '\(monitor)' is not computed; this run has \(available.sorted().joined(separator: ", "))")
            }
        }
        var bestWeights: [String: Tensor] = saved?.bestWeights ?? [:]
        for i in callbacks.indices {
            if let state = saved?.callbacks[callbacks[i].name] { try callbacks[i].restore(state) }
        }
        // The running loss of the current epoch is saved too, so an epoch interrupted and resumed
        // reports (and its callbacks see) the loss an uninterrupted epoch has. Metrics on the
        // training batches restart at the resume point.
        var epochWeighted = saved?.callbacks["epoch"]?["loss_sum"].flatMap(Double.init) ?? 0
        var epochSamples = saved?.callbacks["epoch"]?["samples"].flatMap(Int.init) ?? 0
        func callbackStates() -> [String: [String: String]] {
            var states = Dictionary(uniqueKeysWithValues: callbacks.map { ($0.name, $0.state) })
            if epochSamples > 0 { states["epoch"] = ["loss_sum": "\(epochWeighted)", "samples": String(epochSamples)] }
            return states
        }
        func save(_ t: Trainer, to path: String) throws {
            try TrainingSession.save(t, settings: settings, callbacks: callbackStates(), bestWeights: bestWeights, to: path)
        }
        /// Sets the rate (and onecycle's momentum) the schedule gives after `count` scheduler steps.
        func applySchedule(_ t: inout Trainer, count: Int) throws {
            guard let schedule else { return }
            let (lr, momentum) = try schedule.state(after: count, base: baseLR, baseMomentum: baseMomentum)
            t.optimizer.config.lr = lr
            if case .onecycle = schedule {
                if t.optimizer.config.kind == .adam || t.optimizer.config.kind == .adamw { t.optimizer.config.beta1 = momentum } else { t.optimizer.config.momentum = momentum }
            }
        }
        var csv: FileHandle?
        if let path = settings["csv_log"] {
            let fresh = (saved?.step ?? 0) == 0
            if fresh || !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else { throw DLTrainError("--csv-log: cannot create \(path)") }
            }
            guard let h = FileHandle(forWritingAtPath: path) else { throw DLTrainError("--csv-log: cannot open \(path)") }
            h.seekToEndOfFile()
            csv = h
        }

        let events = try settings["log_dir"].map { d throws -> TensorBoardWriter in try TensorBoardWriter(directory: d) }
        let logEvery = settings["log_every"].flatMap(Int.init)
        if let n = logEvery, n <= 0 { throw DLTrainError("--log-every must be positive, got \(n)") }

        // Train.
        let startStep = trainer.progress.step
        let endStep: Int
        if let steps { endStep = startStep + steps } else {
            // The rest of the current epoch counts as one.
            let epochs = epochs ?? 0
            endStep = epochs == 0 ? startStep : startStep + trainer.stepsPerEpoch(count: dataset.count, from: trainer.progress.batchInEpoch)
                + (epochs - 1) * trainer.stepsPerEpoch(count: dataset.count)
        }
        let tty = isatty(STDERR_FILENO) != 0
        var epochLoss = 0.0, epochCount = 0
        var lastGood = trainer
        var lastLoss = Double.nan
        let total = endStep - startStep
        var epochMetrics: MetricAccumulator? = metricList.isEmpty ? nil : MetricAccumulator(metricList, loss: lossFn)
        var stopped = false
        while trainer.progress.step < endStep && !stopped {
            try applySchedule(&trainer, count: schedule?.perStep == true ? trainer.progress.step : trainer.progress.epoch)
            lastGood = trainer
            let epochBefore = trainer.progress.epoch
            var failure: TrainingError?
            do throws(TrainingError) { lastLoss = try trainer.step(dataset, metrics: &epochMetrics) } catch { failure = error }
            if let failure {
                guard failure.isNonFinite else { throw DLTrainError("\(failure)") }
                try save(lastGood, to: out)
                throw DLTrainError("\(failure); \(out) holds the last good state (step \(lastGood.progress.step))")
            }
            epochLoss += lastLoss
            epochCount += 1
            epochWeighted += trainer.lastStep.weightedLoss
            epochSamples += trainer.lastStep.samples
            let done = trainer.progress.step - startStep
            if let events, let n = logEvery, trainer.progress.step % n == 0 {
                events.add(step: trainer.progress.step, scalars: ["batch_loss": lastLoss, "batch_lr": trainer.optimizer.config.lr])
            }
            if tty {
                let width = 30, filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                FileHandle.standardError.write(Data("\r[\(bar)] step \(trainer.progress.step) epoch \(trainer.progress.epoch) loss \(String(format: "%.5f", lastLoss))".utf8))
            }
            if trainer.progress.epoch != epochBefore {
                // The epoch's values (Keras's logs), then the callbacks in order.
                var logs = try epochMetrics?.values() ?? [:]
                logs["loss"] = epochWeighted / Double(max(epochSamples, 1))
                if let validation {
                    for (k, v) in try trainer.evaluate(validation, metrics: metricList) { logs["val_" + k] = v }
                }
                logs["lr"] = trainer.optimizer.config.lr
                if !tty {
                    let extra = logs.keys.filter { $0 != "loss" && $0 != "lr" }.sorted().map { "\($0) \(String(format: "%.6f", logs[$0] ?? 0))" }
                    FileHandle.standardError.write(Data((["epoch \(epochBefore + 1) step \(trainer.progress.step) loss \(String(format: "%.6f", epochLoss / Double(max(epochCount, 1))))"] + extra).joined(separator: " ").appending("\n").utf8))
                }
                events?.add(step: epochBefore, scalars: Dictionary(uniqueKeysWithValues: logs.map { ("epoch_" + $0.key, $0.value) }))
                if let csv {
                    if csv.offsetInFile == 0 { csv.write(Data((CSVLog.header(logs) + "\n").utf8)) }
                    csv.write(Data((CSVLog.row(epoch: epochBefore, logs) + "\n").utf8))
                }
                var event = EpochEnd(epoch: epochBefore, logs: logs)
                for i in callbacks.indices { try callbacks[i].epochEnded(&event) }
                if event.keepWeightsAsBest { bestWeights = trainer.weights.filter { trainer.trainable.contains($0.0) }.reduce(into: [:]) { $0[$1.0] = $1.1 } }
                if let lr = event.newLearningRate {
                    trainer.optimizer.config.lr = lr
                    FileHandle.standardError.write(Data("epoch \(epochBefore + 1): reducing the learning rate to \(lr)\n".utf8))
                }
                if event.saveBestCheckpoint, let path = settings["checkpoint_best"] { try save(trainer, to: path) }
                if event.stopTraining {
                    stopped = true
                    FileHandle.standardError.write(Data("epoch \(epochBefore + 1): early stopping\n".utf8))
                }
                epochLoss = 0
                epochCount = 0
                epochWeighted = 0
                epochSamples = 0
                epochMetrics = metricList.isEmpty ? nil : MetricAccumulator(metricList, loss: lossFn)
            }
            if let k = checkpointEvery, done % k == 0, trainer.progress.step < endStep, !stopped {
                try save(trainer, to: out)
            }
        }
        if tty && total > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
        if !tty && epochCount > 0 {
            FileHandle.standardError.write(Data("step \(trainer.progress.step) (epoch \(trainer.progress.epoch + 1), batch \(trainer.progress.batchInEpoch)) loss \(String(format: "%.6f", epochLoss / Double(epochCount)))\n".utf8))
        }
        // Keras restores the best epoch's weights when training ends.
        if let early, early.restoreBest, !bestWeights.isEmpty {
            for (name, w) in bestWeights { trainer.weights[name] = w }
            FileHandle.standardError.write(Data("restored the weights of epoch \((callbacks.first { $0 is EarlyStopping } as? EarlyStopping)?.bestEpoch ?? 0) + 1) (early stopping's best)\n".utf8))
        }
        try save(trainer, to: out)
    }
}

struct DLTrainError: Error {
    let message: String
    init(_ m: String) { message = m }
}

// Keras (HDF5) inputs are read in a child process of this executable (KerasIsolation): libhdf5
// may crash on a hostile file, and then only the child dies.
CommandLineTool.setUp()
DLTrain.main()
