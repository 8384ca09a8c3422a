import Foundation

/// What a callback sees at the end of an epoch and what it may ask of the loop.
public struct EpochEnd: Sendable {
    /// The epoch just finished, counted from 0 (Keras's `epoch`).
    public let epoch: Int
    /// `loss`, `<metric>`, `val_loss`, `val_<metric>`, `lr`.
    public let logs: [String: Double]
    /// Set to stop training after this epoch.
    public var stopTraining = false
    /// Set to change the learning rate from the next epoch on.
    public var newLearningRate: Double?
    /// Set when the current weights are the best so far and should be kept (restored at the end).
    public var keepWeightsAsBest = false
    /// Set to write the current model to the best-checkpoint file.
    public var saveBestCheckpoint = false

    public init(epoch: Int, logs: [String: Double]) {
        self.epoch = epoch
        self.logs = logs
    }
}

/// A callback run at the end of every epoch. Its state is a dictionary of strings, so the loop can
/// save it in the checkpoint and a resumed run continues where the interrupted one was.
public protocol TrainingCallback: Sendable {
    /// A short name that prefixes the callback's keys in the saved state.
    var name: String { get }
    mutating func epochEnded(_ event: inout EpochEnd) throws(TrainingError)
    var state: [String: String] { get }
    mutating func restore(_ state: [String: String]) throws(TrainingError)
}

/// `min` or `max`; `auto` picks max for accuracy-like metrics and min for losses and errors.
public enum MonitorMode: String, Sendable {
    case min, max, auto

    func resolved(for monitor: String) -> MonitorMode {
        guard self == .auto else { return self }
        let base = monitor.hasPrefix("val_") ? String(monitor.dropFirst(4)) : monitor
        return Metric(rawValue: base)?.higherIsBetter == true ? .max : .min
    }
}

/// The value a monitor reads, or an error naming what the logs hold.
func monitored(_ monitor: String, _ logs: [String: Double]) throws(TrainingError) -> Double {
    guard let v = logs[monitor] else {
        throw .badSetting("monitor '\(monitor)' is not among the epoch's values (\(logs.keys.sorted().joined(separator: ", ")))")
    }
    return v
}

func parseOptions(_ text: String, for what: String, known: [String]) throws(TrainingError) -> [String: String] {
    var out: [String: String] = [:]
    for part in text.split(separator: ",") where !part.isEmpty {
        let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard kv.count == 2 else { throw .badSetting("\(what): '\(part)' is not key=value") }
        guard known.contains(kv[0]) else { throw .badSetting("\(what) has no option '\(kv[0])'; known: \(known.joined(separator: ", "))") }
        out[kv[0]] = kv[1]
    }
    return out
}

func number(_ options: [String: String], _ key: String, _ what: String, default d: Double) throws(TrainingError) -> Double {
    guard let s = options[key] else { return d }
    guard let v = Double(s), v.isFinite else { throw .badSetting("\(what): \(key)=\(s) is not a number") }
    return v
}

/// Keras's EarlyStopping: stop when `monitor` has not improved by more than `min_delta` for
/// `patience` epochs (never after the first epoch); optionally restore the best epoch's weights.
public struct EarlyStopping: TrainingCallback {
    public let monitor: String
    public let patience: Int
    public let minDelta: Double
    public let mode: MonitorMode
    public let restoreBest: Bool
    public var best: Double?
    public var wait = 0
    public var bestEpoch = 0
    public var stoppedEpoch: Int?
    /// Whether best weights were recorded (the loop holds the weights themselves).
    public var hasBestWeights = false

    public var name: String { "early_stopping" }

    public init(monitor: String = "val_loss", patience: Int = 0, minDelta: Double = 0, mode: MonitorMode = .auto, restoreBest: Bool = false) {
        self.monitor = monitor
        self.patience = patience
        self.minDelta = abs(minDelta)
        self.mode = mode.resolved(for: monitor)
        self.restoreBest = restoreBest
    }

    /// `monitor=M,patience=P,min_delta=D,mode=min|max|auto,restore_best=true|false`.
    public static func parse(_ text: String) throws(TrainingError) -> EarlyStopping {
        let what = "EarlyStopping"
        let o = try parseOptions(text, for: what, known: ["monitor", "patience", "min_delta", "mode", "restore_best"])
        let p = try number(o, "patience", what, default: 0)
        guard p >= 0, p == p.rounded() else { throw .badSetting("\(what): patience must be a whole number >= 0") }
        guard let mode = MonitorMode(rawValue: o["mode"] ?? "auto") else { throw .badSetting("\(what): mode must be min, max or auto") }
        let restore = o["restore_best"] ?? "false"
        guard restore == "true" || restore == "false" else { throw .badSetting("\(what): restore_best must be true or false") }
        return EarlyStopping(monitor: o["monitor"] ?? "val_loss", patience: Int(p), minDelta: try number(o, "min_delta", what, default: 0),
                             mode: mode, restoreBest: restore == "true")
    }

    func improves(_ v: Double, on reference: Double?) -> Bool {
        guard let reference else { return true }
        return mode == .max ? v - minDelta > reference : v + minDelta < reference
    }

    public mutating func epochEnded(_ event: inout EpochEnd) throws(TrainingError) {
        let current = try monitored(monitor, event.logs)
        if restoreBest && !hasBestWeights {
            hasBestWeights = true
            bestEpoch = event.epoch
            event.keepWeightsAsBest = true
        }
        wait += 1
        if improves(current, on: best) {
            best = current
            bestEpoch = event.epoch
            if restoreBest { event.keepWeightsAsBest = true }
            wait = 0
            return
        }
        if wait >= patience && event.epoch > 0 {
            stoppedEpoch = event.epoch
            event.stopTraining = true
        }
    }

    public var state: [String: String] {
        var s = ["wait": String(wait), "best_epoch": String(bestEpoch), "has_best_weights": String(hasBestWeights)]
        if let best { s["best"] = "\(best)" }
        if let stoppedEpoch { s["stopped_epoch"] = String(stoppedEpoch) }
        return s
    }

    public mutating func restore(_ s: [String: String]) throws(TrainingError) {
        guard let w = s["wait"].flatMap(Int.init), let e = s["best_epoch"].flatMap(Int.init) else {
            throw .badState("the checkpoint's early-stopping state is incomplete")
        }
        wait = w
        bestEpoch = e
        best = s["best"].flatMap(Double.init)
        stoppedEpoch = s["stopped_epoch"].flatMap(Int.init)
        hasBestWeights = s["has_best_weights"] == "true"
    }
}

/// Keras's ModelCheckpoint with `save_best_only`: write the model when `monitor` improves on the
/// best value so far (strictly; the first epoch always writes).
public struct BestCheckpoint: TrainingCallback {
    public let monitor: String
    public let mode: MonitorMode
    public var best: Double?

    public var name: String { "checkpoint_best" }

    public init(monitor: String = "val_loss", mode: MonitorMode = .auto) {
        self.monitor = monitor
        self.mode = mode.resolved(for: monitor)
    }

    public mutating func epochEnded(_ event: inout EpochEnd) throws(TrainingError) {
        let current = try monitored(monitor, event.logs)
        if let best, mode == .max ? !(current > best) : !(current < best) { return }
        best = current
        event.saveBestCheckpoint = true
    }

    public var state: [String: String] { best.map { ["best": "\($0)"] } ?? [:] }
    public mutating func restore(_ s: [String: String]) throws(TrainingError) { best = s["best"].flatMap(Double.init) }
}

/// torch's ReduceLROnPlateau (threshold mode `rel`): after more than `patience` epochs without a
/// relative improvement of `threshold`, multiply the rate by `factor` (not below `min_lr`), then
/// wait `cooldown` epochs.
public struct ReduceLROnPlateau: TrainingCallback {
    public let monitor: String
    public let mode: MonitorMode
    public let factor: Double
    public let patience: Int
    public let threshold: Double
    public let cooldown: Int
    public let minLR: Double
    public var best: Double?
    public var badEpochs = 0
    public var cooldownCounter = 0

    public var name: String { "reduce_lr_on_plateau" }

    public init(monitor: String = "val_loss", mode: MonitorMode = .auto, factor: Double = 0.1, patience: Int = 10,
                threshold: Double = 1e-4, cooldown: Int = 0, minLR: Double = 0) {
        self.monitor = monitor
        self.mode = mode.resolved(for: monitor)
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.cooldown = cooldown
        self.minLR = minLR
    }

    /// `monitor=M,mode=min|max|auto,factor=F,patience=P,threshold=T,cooldown=C,min_lr=L` (torch's defaults).
    public static func parse(_ text: String) throws(TrainingError) -> ReduceLROnPlateau {
        let what = "ReduceLROnPlateau"
        let o = try parseOptions(text, for: what, known: ["monitor", "mode", "factor", "patience", "threshold", "cooldown", "min_lr"])
        let factor = try number(o, "factor", what, default: 0.1)
        guard factor > 0, factor < 1 else { throw .badSetting("\(what): factor must be in (0, 1), got \(factor)") }
        let p = try number(o, "patience", what, default: 10), c = try number(o, "cooldown", what, default: 0)
        guard p >= 0, p == p.rounded(), c >= 0, c == c.rounded() else { throw .badSetting("\(what): patience and cooldown must be whole numbers >= 0") }
        let minLR = try number(o, "min_lr", what, default: 0), threshold = try number(o, "threshold", what, default: 1e-4)
        guard minLR >= 0, threshold >= 0 else { throw .badSetting("\(what): min_lr and threshold must be >= 0") }
        guard let mode = MonitorMode(rawValue: o["mode"] ?? "auto") else { throw .badSetting("\(what): mode must be min, max or auto") }
        return ReduceLROnPlateau(monitor: o["monitor"] ?? "val_loss", mode: mode, factor: factor, patience: Int(p),
                                 threshold: threshold, cooldown: Int(c), minLR: minLR)
    }

    func isBetter(_ v: Double) -> Bool {
        guard let best else { return true }
        return mode == .max ? v > best * (threshold + 1) : v < best * (1 - threshold)
    }

    public mutating func epochEnded(_ event: inout EpochEnd) throws(TrainingError) {
        let current = try monitored(monitor, event.logs)
        if isBetter(current) { best = current; badEpochs = 0 } else { badEpochs += 1 }
        if cooldownCounter > 0 { cooldownCounter -= 1; badEpochs = 0 }
        if badEpochs > patience {
            let old = event.newLearningRate ?? event.logs["lr"] ?? 0
            let new = max(old * factor, minLR)
            if old - new > 1e-8 { event.newLearningRate = new }
            cooldownCounter = cooldown
            badEpochs = 0
        }
    }

    public var state: [String: String] {
        var s = ["bad_epochs": String(badEpochs), "cooldown_counter": String(cooldownCounter)]
        if let best { s["best"] = "\(best)" }
        return s
    }

    public mutating func restore(_ s: [String: String]) throws(TrainingError) {
        guard let b = s["bad_epochs"].flatMap(Int.init), let c = s["cooldown_counter"].flatMap(Int.init) else {
            throw .badState("the checkpoint's reduce-lr-on-plateau state is incomplete")
        }
        badEpochs = b
        cooldownCounter = c
        best = s["best"].flatMap(Double.init)
    }
}

/// Keras's CSVLogger layout: a header `epoch,<names...>` (the epoch's values sorted by name, `lr`
/// last) and one row per epoch (epoch counted from 0), values in shortest round-trip form.
public enum CSVLog {
    public static func header(_ logs: [String: Double]) -> String {
        (["epoch"] + columns(logs)).joined(separator: ",")
    }

    public static func row(epoch: Int, _ logs: [String: Double]) -> String {
        ([String(epoch)] + columns(logs).map { logs[$0].map { "\($0)" } ?? "NA" }).joined(separator: ",")
    }

    static func columns(_ logs: [String: Double]) -> [String] {
        logs.keys.filter { $0 != "lr" }.sorted() + (logs["lr"] != nil ? ["lr"] : [])
    }
}
