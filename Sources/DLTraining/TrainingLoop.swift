import DLTensor
import Foundation

/// What the loop tells its caller as it runs (`dltrain` prints these).
public enum TrainingReport: Sendable {
    /// After every optimizer step: `done` of `total` steps of this run.
    case step(step: Int, epoch: Int, done: Int, total: Int, loss: Double)
    /// At the end of epoch `epoch` (from 0): the mean of its batch losses and the values the
    /// callbacks saw (`loss`, metrics, `val_...`, `lr`).
    case epochEnded(epoch: Int, step: Int, meanBatchLoss: Double, logs: [String: Double])
    case learningRateReduced(epoch: Int, lr: Double)
    case stoppedEarly(epoch: Int)
    /// Early stopping's best weights (of epoch `epoch`, from 0) were put back at the end.
    case restoredBest(epoch: Int)
    /// The run ended inside an epoch; the mean of the batch losses since the last epoch's end.
    case endedMidEpoch(step: Int, epoch: Int, batchInEpoch: Int, meanBatchLoss: Double)
}

/// Which checkpoint the loop asks its caller to write.
public enum CheckpointPurpose: Sendable {
    /// The run's state: every `checkpointEvery` steps, at the end, and the last good state when a
    /// loss or gradient turns NaN.
    case latest
    /// The best epoch so far (`BestCheckpoint`).
    case best
}

/// Everything a checkpoint of the loop holds besides the settings.
public struct TrainingSnapshot: Sendable {
    public let trainer: Trainer
    /// Each callback's state by its name, and the running loss of an unfinished epoch (`epoch`).
    public let callbacks: [String: [String: String]]
    /// The weights early stopping keeps to restore at the end.
    public let bestWeights: [String: Tensor]
}

/// The epoch loop `model.fit()` runs, and `dltrain` with it: steps, the epoch's values (training
/// loss and metrics, validation loss and metrics, rate), the learning-rate schedule, callbacks in
/// order, the CSV and TensorBoard logs, periodic and best checkpoints (through `save`), and the
/// state a checkpoint needs so a resumed run ends bit for bit where an uninterrupted one ends.
public struct TrainingLoop {
    public var trainer: Trainer
    public var callbacks: [any TrainingCallback]
    public var metrics: [Metric]
    public var validation: Dataset?
    public var schedule: LRSchedule?
    /// The rate and momentum (beta1 for Adam) the schedule starts from.
    public var baseLR: Double
    public var baseMomentum: Double
    public var csvLog: CSVLogFile?
    public var events: TensorBoardWriter?
    /// With `events`, `batch_loss` and `batch_lr` every this many steps.
    public var logEvery: Int?
    /// Ask for a `.latest` checkpoint every this many steps of the run.
    public var checkpointEvery: Int?
    /// The current epoch's sum of batch loss x samples, and its samples (saved in checkpoints).
    public var epochLossSum = 0.0
    public var epochSamples = 0
    /// The same sums per output loss (`Trainer.heads`), when there are several.
    public var epochHeadSums: [Double]
    /// The current epoch's training-batch metrics so far (saved in checkpoints too, so a run
    /// resumed inside an epoch logs the metrics of all its batches).
    public var epochMetrics: MetricAccumulator?
    public var bestWeights: [String: Tensor] = [:]

    public init(trainer: Trainer, metrics: [Metric] = [], validation: Dataset? = nil, callbacks: [any TrainingCallback] = [],
                schedule: LRSchedule? = nil, baseLR: Double? = nil) {
        self.trainer = trainer
        self.metrics = metrics
        self.validation = validation
        self.callbacks = callbacks
        self.schedule = schedule
        let c = trainer.optimizer.config
        self.baseLR = baseLR ?? c.lr
        baseMomentum = c.kind == .adam || c.kind == .adamw ? c.beta1 : c.momentum
        epochHeadSums = [Double](repeating: 0, count: trainer.heads.count)
        epochMetrics = metrics.isEmpty ? nil : MetricAccumulator(metrics, loss: trainer.heads[0].loss)
    }

    /// The values an epoch reports: `loss`, `lr`, metrics, per-output losses, and their `val_` forms.
    public var available: Set<String> {
        var names: Set<String> = ["loss", "lr"]
        for m in metrics { names.insert(m.rawValue) }
        for n in trainer.headLossNames { names.insert(n) }
        if validation != nil { for k in Array(names) where k != "lr" { names.insert("val_" + k) } }
        return names
    }

    /// Refuses what cannot work before the first step: data that does not fit the model (and the
    /// validation set), metrics that do not fit the loss, a monitor nothing computes, a schedule
    /// together with a plateau callback, a step interval below 1. `run` checks this too; call it
    /// first to fail before opening logs.
    public func check(_ data: Dataset) throws(TrainingError) {
        try trainer.check(data)
        if let validation { try trainer.check(validation, validation: true) }
        if let n = logEvery, n <= 0 { throw .badSetting("the logging interval must be a positive number of steps, got \(n)") }
        try Metric.check(metrics, loss: trainer.heads[0].loss)
        if schedule != nil && callbacks.contains(where: { $0 is ReduceLROnPlateau }) {
            throw .badSetting("an LR schedule and ReduceLROnPlateau both set the learning rate; give one")
        }
        let names = available
        for c in callbacks {
            let monitor = (c as? EarlyStopping)?.monitor ?? (c as? BestCheckpoint)?.monitor ?? (c as? ReduceLROnPlateau)?.monitor
            if let monitor, !names.contains(monitor) {
                throw .badSetting("monitor '\(monitor)' is not computed; this run has \(names.sorted().joined(separator: ", "))")
            }
        }
    }

    /// The state to save: each callback's, and the running loss of an unfinished epoch.
    public var callbackStates: [String: [String: String]] {
        var states = Dictionary(uniqueKeysWithValues: callbacks.map { ($0.name, $0.state) })
        if epochSamples > 0 {
            var e = ["loss_sum": "\(epochLossSum)", "samples": String(epochSamples)]
            if epochHeadSums.count > 1 { e["head_loss_sums"] = epochHeadSums.map { "\($0)" }.joined(separator: ",") }
            for (k, v) in epochMetrics?.state ?? [:] { e["metrics_" + k] = v }
            states["epoch"] = e
        }
        return states
    }

    /// Continues from a checkpoint's callback states and best weights.
    public mutating func restore(callbackStates states: [String: [String: String]], bestWeights: [String: Tensor]) throws(TrainingError) {
        for i in callbacks.indices {
            if let s = states[callbacks[i].name] { try callbacks[i].restore(s) }
        }
        self.bestWeights = bestWeights
        epochLossSum = states["epoch"]?["loss_sum"].flatMap(Double.init) ?? 0
        epochSamples = states["epoch"]?["samples"].flatMap(Int.init) ?? 0
        if let sums = states["epoch"]?["head_loss_sums"] {
            let values = sums.split(separator: ",").compactMap { Double($0) }
            guard values.count == epochHeadSums.count else { throw .badState("the checkpoint's per-output epoch losses do not fit \(epochHeadSums.count) outputs") }
            epochHeadSums = values
        }
        // The metrics are those of this run's settings; a checkpoint from before metrics were
        // saved (or an epoch boundary) starts them empty.
        let metricState = (states["epoch"] ?? [:]).reduce(into: [String: String]()) { out, kv in
            if kv.key.hasPrefix("metrics_") { out[String(kv.key.dropFirst("metrics_".count))] = kv.value }
        }
        if !metrics.isEmpty && !metricState.isEmpty {
            epochMetrics = try MetricAccumulator(metrics, loss: trainer.heads[0].loss, state: metricState)
        }
    }

    public var snapshot: TrainingSnapshot { snapshot(of: trainer) }

    func snapshot(of t: Trainer) -> TrainingSnapshot {
        TrainingSnapshot(trainer: t, callbacks: callbackStates, bestWeights: bestWeights)
    }

    /// The last step of a run of `epochs` more epochs (the rest of the current one counts as
    /// one) or `steps` more steps on `data`.
    public func endStep(for data: Dataset, epochs: Int? = nil, steps: Int? = nil) -> Int {
        let start = trainer.progress.step
        if let steps { return start + steps }
        let epochs = epochs ?? 0
        guard epochs > 0 else { return start }
        return start + trainer.stepsPerEpoch(count: data.count, from: trainer.progress.batchInEpoch)
            + (epochs - 1) * trainer.stepsPerEpoch(count: data.count)
    }

    /// Sets the rate (and onecycle's momentum) the schedule gives after `count` scheduler steps.
    mutating func applySchedule() throws(TrainingError) {
        guard let schedule else { return }
        let count = schedule.perStep ? trainer.progress.step : trainer.progress.epoch
        let (lr, momentum) = try schedule.state(after: count, base: baseLR, baseMomentum: baseMomentum)
        trainer.optimizer.config.lr = lr
        if case .onecycle = schedule {
            if trainer.optimizer.config.kind == .adam || trainer.optimizer.config.kind == .adamw {
                trainer.optimizer.config.beta1 = momentum
            } else {
                trainer.optimizer.config.momentum = momentum
            }
        }
    }

    /// Trains `epochs` more epochs or `steps` more steps on `data` (early stopping may end it
    /// sooner), then asks for the final `.latest` checkpoint.
    /// - Parameters:
    ///   - save: writes a checkpoint of the snapshot (`TrainingSession.save` in DLKit).
    ///   - report: progress, epoch values, and what callbacks did.
    /// - Throws: a `TrainingError` from a step or callback; for a NaN or infinite loss or
    ///   gradient, after `save` got the last good state (which `trainer` then holds).
    public mutating func run(_ data: Dataset, epochs: Int? = nil, steps: Int? = nil,
                             save: (TrainingSnapshot, CheckpointPurpose) throws -> Void,
                             report: (TrainingReport) -> Void = { _ in }) throws {
        try check(data)
        let startStep = trainer.progress.step
        let endStep = endStep(for: data, epochs: epochs, steps: steps)
        let total = endStep - startStep
        var batchLossSum = 0.0, batchCount = 0
        var stopped = false
        while trainer.progress.step < endStep && !stopped {
            try applySchedule()
            // A step that throws leaves the trainer as it was (`Trainer.step`): only the metrics
            // of its batches are taken back.
            let metricsBefore = epochMetrics
            let epochBefore = trainer.progress.epoch
            let loss: Double
            do { loss = try trainer.step(data, metrics: &epochMetrics) } catch {
                if error.isNonFinite {
                    epochMetrics = metricsBefore
                    try save(snapshot, .latest)
                }
                throw error
            }
            batchLossSum += loss
            batchCount += 1
            epochLossSum += trainer.lastStep.weightedLoss
            epochSamples += trainer.lastStep.samples
            for (k, v) in trainer.lastStep.headLosses.enumerated() where k < epochHeadSums.count { epochHeadSums[k] += v }
            let done = trainer.progress.step - startStep
            if let events, let n = logEvery, trainer.progress.step % n == 0 {
                events.add(step: trainer.progress.step, scalars: ["batch_loss": loss, "batch_lr": trainer.optimizer.config.lr])
            }
            report(.step(step: trainer.progress.step, epoch: trainer.progress.epoch, done: done, total: total, loss: loss))
            if trainer.progress.epoch != epochBefore {
                // The epoch's values (Keras's logs), then the callbacks in order.
                var logs = try epochMetrics?.values() ?? [:]
                logs["loss"] = epochLossSum / Double(max(epochSamples, 1))
                for (name, sum) in zip(trainer.headLossNames, epochHeadSums) { logs[name] = sum / Double(max(epochSamples, 1)) }
                if let validation {
                    for (k, v) in try trainer.evaluate(validation, metrics: metrics) { logs["val_" + k] = v }
                }
                logs["lr"] = trainer.optimizer.config.lr
                report(.epochEnded(epoch: epochBefore, step: trainer.progress.step, meanBatchLoss: batchLossSum / Double(max(batchCount, 1)), logs: logs))
                events?.add(step: epochBefore, scalars: Dictionary(uniqueKeysWithValues: logs.map { ("epoch_" + $0.key, $0.value) }))
                csvLog?.write(epoch: epochBefore, logs)
                var event = EpochEnd(epoch: epochBefore, logs: logs)
                for i in callbacks.indices { try callbacks[i].epochEnded(&event) }
                if event.keepWeightsAsBest {
                    bestWeights = trainer.weights.filter { trainer.trainable.contains($0.0) }.reduce(into: [:]) { $0[$1.0] = $1.1 }
                }
                if let lr = event.newLearningRate {
                    trainer.optimizer.config.lr = lr
                    report(.learningRateReduced(epoch: epochBefore, lr: lr))
                }
                if event.saveBestCheckpoint { try save(snapshot, .best) }
                if event.stopTraining {
                    stopped = true
                    report(.stoppedEarly(epoch: epochBefore))
                }
                batchLossSum = 0
                batchCount = 0
                epochLossSum = 0
                epochSamples = 0
                epochHeadSums = epochHeadSums.map { _ in 0 }
                epochMetrics = metrics.isEmpty ? nil : MetricAccumulator(metrics, loss: trainer.heads[0].loss)
            }
            if let k = checkpointEvery, done % k == 0, trainer.progress.step < endStep, !stopped {
                try save(snapshot, .latest)
            }
        }
        if batchCount > 0 {
            report(.endedMidEpoch(step: trainer.progress.step, epoch: trainer.progress.epoch, batchInEpoch: trainer.progress.batchInEpoch,
                                  meanBatchLoss: batchLossSum / Double(batchCount)))
        }
        // Keras restores the best epoch's weights when training ends.
        if let early = callbacks.lazy.compactMap({ $0 as? EarlyStopping }).first, early.restoreBest, !bestWeights.isEmpty {
            for (name, w) in bestWeights { trainer.weights[name] = w }
            report(.restoredBest(epoch: early.bestEpoch))
        }
        try save(snapshot, .latest)
    }
}

/// A Keras CSVLogger file: the header before the first row, one row per epoch, appended to when a
/// run resumes.
public final class CSVLogFile {
    public let path: String
    let handle: FileHandle

    /// Opens `path` for appending; `fresh` (or a missing file) starts it empty.
    public init(path: String, fresh: Bool) throws(TrainingError) {
        self.path = path
        if fresh || !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw .badSetting("cannot create the CSV log \(path)") }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw .badSetting("cannot open the CSV log \(path)") }
        h.seekToEndOfFile()
        handle = h
    }

    public func write(epoch: Int, _ logs: [String: Double]) {
        if handle.offsetInFile == 0 { handle.write(Data((CSVLog.header(logs) + "\n").utf8)) }
        handle.write(Data((CSVLog.row(epoch: epoch, logs) + "\n").utf8))
    }
}
