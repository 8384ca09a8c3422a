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
            """)

    @Argument(help: "The model to train: .onnx, Keras .h5/.keras, or .ckpt (a .ckpt with training state resumes its run).")
    var checkpoint: String

    @Option(help: "Training data: .safetensors or .npz (input and target arrays by name) or .csv.")
    var data: String

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

    @Option(help: "The checkpoint to write.") var out: String
    @Option(help: "Also write OUT every K steps.") var checkpointEvery: Int?
    @Flag(help: "Let flags change settings the checkpoint saved.") var override = false

    func validate() throws {
        if (epochs == nil) == (steps == nil) { throw ValidationError("give exactly one of --epochs and --steps") }
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
        guard let bs = settings["batch_size"].flatMap(Int.init), bs > 0 else { throw DLTrainError("--batch-size is required for a new run") }
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

        // Data.
        let inputName = settings["input"] ?? "x"
        let dataset = try TrainingData.load(path: data, inputName: inputName, targetName: settings["target"] ?? "y",
                                            inputColumns: settings["input_columns"].map { $0.split(separator: ",").map(String.init) } ?? [],
                                            targetColumn: settings["target_column"], integerTargets: lossFn.takesClassIndices)

        var progress = TrainingProgress(seed: runSeed, shuffle: shuffle)
        if let saved {
            progress = TrainingSession.progress(from: saved, seed: runSeed, shuffle: shuffle)
            progress.shuffleSeed = shuffle ? runSeed : nil
        }
        let options = TrainerOptions(inputName: inputName, outputName: settings["output"], loss: lossFn, batchSize: bs, dropLast: settings["drop_last"] == "true")
        var trainer = try Trainer(graph: graph, optimizer: Optimizer(config: config, slots: slots), options: options, progress: progress, frozen: frozen)
        if let saved, saved.parameters != trainer.trainable, !slots.isEmpty {
            throw DLTrainError("\(checkpoint) saved optimizer state for parameters \(saved.parameters.joined(separator: ", ")); this run trains \(trainer.trainable.joined(separator: ", "))")
        }
        try trainer.check(dataset)

        // Train.
        let perEpoch = trainer.batchesPerEpoch(count: dataset.count)
        let startStep = trainer.progress.step
        let endStep: Int
        if let steps { endStep = startStep + steps } else {
            let targetEpoch = trainer.progress.epoch + (epochs ?? 0)
            endStep = startStep + (targetEpoch - trainer.progress.epoch) * perEpoch - trainer.progress.batchInEpoch
        }
        let tty = isatty(STDERR_FILENO) != 0
        var epochLoss = 0.0, epochCount = 0
        var lastGood = trainer
        var lastLoss = Double.nan
        let total = endStep - startStep
        while trainer.progress.step < endStep {
            lastGood = trainer
            let epochBefore = trainer.progress.epoch
            var failure: TrainingError?
            do throws(TrainingError) { lastLoss = try trainer.step(dataset) } catch { failure = error }
            if let failure {
                guard failure.isNonFinite else { throw DLTrainError("\(failure)") }
                try TrainingSession.save(lastGood, settings: settings, to: out)
                throw DLTrainError("\(failure); \(out) holds the last good state (step \(lastGood.progress.step))")
            }
            epochLoss += lastLoss
            epochCount += 1
            let done = trainer.progress.step - startStep
            if tty {
                let width = 30, filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                FileHandle.standardError.write(Data("\r[\(bar)] step \(trainer.progress.step) epoch \(trainer.progress.epoch) loss \(String(format: "%.5f", lastLoss))".utf8))
            }
            if trainer.progress.epoch != epochBefore {
                if !tty {
                    FileHandle.standardError.write(Data("epoch \(epochBefore + 1) step \(trainer.progress.step) loss \(String(format: "%.6f", epochLoss / Double(max(epochCount, 1))))\n".utf8))
                }
                epochLoss = 0
                epochCount = 0
            }
            if let k = checkpointEvery, done % k == 0, trainer.progress.step < endStep {
                try TrainingSession.save(trainer, settings: settings, to: out)
            }
        }
        if tty && total > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
        if !tty && epochCount > 0 {
            FileHandle.standardError.write(Data("step \(trainer.progress.step) (epoch \(trainer.progress.epoch + 1), batch \(trainer.progress.batchInEpoch)) loss \(String(format: "%.6f", epochLoss / Double(epochCount)))\n".utf8))
        }
        try TrainingSession.save(trainer, settings: settings, to: out)
    }
}

struct DLTrainError: Error {
    let message: String
    init(_ m: String) { message = m }
}

// Keras (HDF5) inputs are read in a child process of this executable (KerasIsolation): libhdf5
// may crash on a hostile file, and then only the child dies.
KerasIsolation.setUpForCommandLine()
DLTrain.main()
