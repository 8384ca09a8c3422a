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

    @Option(help: "Training data: .safetensors, .npz or a folder of .npy files (input and target arrays by name; memory-mapped, .npz members when stored), .csv, or a folder of one subfolder of images per class (with --image-size).")
    var data: String
    @Option(help: "Image folders: the size images are resized to, H,W.")
    var imageSize: String?
    @Flag(help: "Image folders: leave out images that do not decode (counted on stderr) instead of stopping.")
    var skipBadImages = false
    @Option(help: "Image folders: MiB of decoded images kept in memory between epochs (default: a quarter of the memory, at most 2048); the images past it are decoded again each epoch. 0 decodes every batch.")
    var imageCacheMb: Int?

    @Option(help: "The model input fed with the data, and the data array holding it (default: saved, else every input of the model, comma-separated: input_ids,attention_mask, each from the data array of its name).")
    var input: String?
    @Option(help: "The data array (or with .csv, see --target-column) holding the targets (default: saved, else 'y').")
    var target: String?
    @Option(help: "CSV: comma-separated input column names (default: every column but the target).")
    var inputColumns: String?
    @Option(help: "CSV: the target column.")
    var targetColumn: String?
    @Option(help: "The model output the loss reads (default: the first).")
    var output: String?

    @Option(help: "mse, l1, smooth_l1, huber, cross_entropy, nll, bce, bce_with_logits; or one per output of a model with several, out1=mse,out2=cross_entropy (targets: --target out1=y1,out2=y2, else the arrays named as the outputs).")
    var loss: String?
    @Option(help: "With a loss per output: their weights, 1,0.5 in --loss order or out1=1,out2=0.5 (Keras's loss_weights; default 1).")
    var lossWeights: String?
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
    @Option(help: "Shuffle through a buffer of N samples refilled in data order (tf.data's shuffle(N)), so reads of a memory-mapped file stay near each other; default: a full shuffle of each epoch.")
    var shuffleBuffer: Int?
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
    @Option(help: "Threads for GEMM and the runtime's own loops together (a run's numbers depend on it: resume with the same count for bit-identical results).")
    var threads = 1

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
        if threads <= 0 { throw ValidationError("--threads must be positive") }
        if noShuffle && seed != nil { throw ValidationError("--no-shuffle and --seed exclude each other") }
        if noShuffle && shuffleBuffer != nil { throw ValidationError("--no-shuffle and --shuffle-buffer exclude each other") }
    }

    func run() throws {
        Model.setThreadCount(threads, environment: ProcessInfo.processInfo.environment)
        CommandLineTool.keepFreedMemory()
        do { try train() } catch let e as DLTrainError {
            FileHandle.standardError.write(Data("dltrain: \(e.message)\n".utf8))
            throw ExitCode(1)
        } catch let e as DLKitError {
            FileHandle.standardError.write(Data("dltrain: \(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// The flags as a `TrainingRequest`: settings by their checkpoint key, hyperparameters by theirs.
    func request() throws -> TrainingRequest {
        var r = TrainingRequest(model: checkpoint, data: data)
        var given: [String: String] = [:]
        if let input { given["input"] = input }
        if let target { given["target"] = target }
        if let output { given["output"] = output }
        if let loss { given["loss"] = loss }
        if let lossWeights { given["loss_weights"] = lossWeights }
        if let labelSmoothing { given["label_smoothing"] = String(labelSmoothing) }
        if let batchSize { given["batch_size"] = String(batchSize) }
        if noShuffle { given["shuffle"] = "false" }
        if let seed { given["seed"] = String(seed); given["shuffle"] = "true" }
        if let shuffleBuffer { given["shuffle_buffer"] = String(shuffleBuffer) }
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
        r.settings = given
        r.optimizer = optimizer
        var flags: [(key: String, flag: String, value: Double)] = []
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
        r.hyperparameters = flags
        r.override = override
        r.skipBadImages = skipBadImages
        if let imageCacheMb {
            guard imageCacheMb >= 0, imageCacheMb <= Int.max >> 20 else { throw DLTrainError("--image-cache-mb \(imageCacheMb) must be 0 or more MiB") }
            r.imageCacheBytes = imageCacheMb << 20
        }
        r.epochs = epochs
        r.steps = steps
        r.out = out
        r.checkpointEvery = checkpointEvery
        return r
    }

    func train() throws {
        let request = try request()
        if evaluate {
            let values = try TrainingRun.evaluate(request, report: note)
            let body = values.keys.sorted().map { "\"\($0)\":\(values[$0].map { $0.isFinite ? "\($0)" : "null" } ?? "null")" }
            print("{" + body.joined(separator: ",") + "}")
            return
        }
        let tty = isatty(STDERR_FILENO) != 0
        var drewBar = false
        try TrainingRun.train(request) { event in
            guard case .loop(let report) = event else { return note(event) }
            switch report {
            case .step(let step, let epoch, let done, let total, let loss):
                guard tty else { return }
                let width = 30, filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                write("\r[\(bar)] step \(step) epoch \(epoch) loss \(String(format: "%.5f", loss))")
                drewBar = true
            case .epochEnded(let epoch, let step, let mean, let logs):
                guard !tty else { return }
                let extra = logs.keys.filter { $0 != "loss" && $0 != "lr" }.sorted().map { "\($0) \(String(format: "%.6f", logs[$0] ?? 0))" }
                write((["epoch \(epoch + 1) step \(step) loss \(String(format: "%.6f", mean))"] + extra).joined(separator: " ") + "\n")
            case .learningRateReduced(let epoch, let lr):
                write("epoch \(epoch + 1): reducing the learning rate to \(lr)\n")
            case .stoppedEarly(let epoch):
                write("epoch \(epoch + 1): early stopping\n")
            case .endedMidEpoch(let step, let epoch, let batch, let mean):
                if drewBar { write("\n"); drewBar = false }
                guard !tty else { return }
                write("step \(step) (epoch \(epoch + 1), batch \(batch)) loss \(String(format: "%.6f", mean))\n")
            case .restoredBest(let epoch):
                if drewBar { write("\n"); drewBar = false }
                write("restored the weights of epoch \(epoch + 1) (early stopping's best)\n")
            }
        }
        if drewBar { write("\n") }
    }

    func note(_ event: TrainingRunEvent) {
        if case .note(let line) = event { write(line + "\n") }
    }

    func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
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
