import Foundation
import DLAutograd
import DLCheckpoint
import DLGraph
import DLTensor
import DLTorch

/// Moves training state between a `Trainer`, the `.ckpt` and PyTorch optimizer state dicts.
public enum TrainingSession {
    /// The optimizer settings a checkpoint holds.
    public static func config(from state: TrainingState) throws(TrainingError) -> OptimizerConfig {
        guard let kind = OptimizerKind(rawValue: state.optimizer) else {
            throw .badState("checkpoint optimizer '\(state.optimizer)' is not one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var c = OptimizerConfig(kind: kind)
        for (k, v) in state.hyperparameters.sorted(by: { $0.key < $1.key }) where !c.set(k, v) {
            throw .badState("checkpoint hyperparameter '\(k)' is not one \(kind.rawValue) has")
        }
        return c
    }

    /// The state to store for a trainer.
    public static func state(of t: Trainer, settings: [String: String]) -> TrainingState {
        var slots: [String: [String: Tensor]] = [:]
        for p in t.trainable { if let s = t.optimizer.slots[p] { slots[p] = s } }
        return TrainingState(optimizer: t.optimizer.config.kind.rawValue,
                             hyperparameters: Dictionary(uniqueKeysWithValues: t.optimizer.config.values.map { ($0.key, $0.value) }),
                             slots: slots, parameters: t.trainable, step: t.progress.step, epoch: t.progress.epoch,
                             batchInEpoch: t.progress.batchInEpoch, rngState: t.progress.rng.state, shuffleSeed: t.progress.shuffleSeed,
                             settings: settings)
    }

    /// The progress a checkpoint holds.
    public static func progress(from s: TrainingState, seed: UInt64, shuffle: Bool) -> TrainingProgress {
        var p = TrainingProgress(seed: seed, shuffle: shuffle)
        p.step = s.step
        p.epoch = s.epoch
        p.batchInEpoch = s.batchInEpoch
        if let r = TrainingRNG(state: s.rngState) { p.rng = r }
        if s.shuffleSeed != nil || !s.rngState.isEmpty { p.shuffleSeed = s.shuffleSeed }
        return p
    }

    /// A checkpoint of the trainer's graph with its current weights and training state, with the
    /// callbacks' state and the best epoch's weights when the run has them.
    public static func checkpoint(of t: Trainer, settings: [String: String], callbacks: [String: [String: String]] = [:],
                                  bestWeights: [String: Tensor] = [:]) -> Checkpoint {
        var g = t.differentiator.graph
        for (name, w) in t.weights { g.initializers[name] = w }
        var c = Checkpoint(graph: g)
        var s = state(of: t, settings: settings)
        s.callbacks = callbacks
        s.bestWeights = bestWeights
        c.training = s
        return c
    }

    // MARK: PyTorch optimizer state dicts

    /// Reads `optimizer.state_dict()` saved by `torch.save` (the file's root, or `key` inside it)
    /// for a model whose trained parameters, in `model.parameters()` order, are `parameters`.
    /// - Throws: when the counts or slot shapes do not fit the parameters (listed).
    public static func importTorch(path: String, key: String? = nil, parameters: [String], shapes: [String: [Int]]) throws(TrainingError) -> TrainingState {
        let opt: TorchOptimizerState
        let slots: [String: [String: Tensor]]
        do {
            let file = try TorchFile(path: path)
            opt = try TorchOptimizerState(try file.value(at: key), file: file)
            slots = try opt.slots(parameterNames: parameters, path: path)
        } catch { throw .torch(error) }
        guard let kind = opt.kind else { throw .badState("\(path): the optimizer is not SGD, RMSprop, Adam or AdamW") }
        guard let group = opt.groups.first else { throw .badState("\(path): the optimizer has no parameter groups") }
        if opt.groups.count > 1 {
            throw .badState("\(path): \(opt.groups.count) parameter groups; only one group (one set of hyperparameters) is supported")
        }
        var problems: [String] = []
        for (p, s) in slots.sorted(by: { $0.key < $1.key }) {
            for (k, t) in s where k != "step" && t.shape != shapes[p] {
                problems.append("\(p).\(k): \(t.shape) vs parameter \(shapes[p] ?? [])")
            }
        }
        guard problems.isEmpty else { throw .weightsMismatch(path: path, problems: problems) }
        var hyper: [String: Double] = [:]
        func num(_ v: TorchValue?) -> Double? {
            switch v {
            case .float(let f)?: f
            case .int(let i)?: Double(i)
            case .bool(let b)?: b ? 1 : 0
            default: nil
            }
        }
        var c = OptimizerConfig(kind: kind == .adam ? .adam : kind == .adamw ? .adamw : kind == .sgd ? .sgd : .rmsprop)
        for (k, _) in c.values {
            if k == "beta1" || k == "beta2" {
                if case .tuple(let b)? = group["betas"], b.count == 2, let v = num(b[k == "beta1" ? 0 : 1]) { hyper[k] = v }
                continue
            }
            if let v = num(group[k]) { hyper[k] = v }
        }
        if case .bool(true)? = group["maximize"] { throw .badState("\(path): maximize=True is not supported") }
        for (k, v) in hyper { c.set(k, v) }
        var step = 0
        for (p, s) in slots.sorted(by: { $0.key < $1.key }) {
            guard let t = s["step"] else { continue }
            // A step is a count: a NaN, infinite, negative or fractional-huge one is refused, not trapped on.
            guard t.elementCount == 1, let d = t.doubles().first, d.isFinite, d >= 0, d <= 9_007_199_254_740_992 else {
                throw .badState("\(path): \(p).step is \(t.elementCount == 1 ? "\(t.doubles().first ?? 0)" : "shaped \(t.shape)"), not a step count")
            }
            step = max(step, Int(d))
        }
        var cleaned = slots
        for (p, s) in slots { cleaned[p] = s.mapValues { $0.dtype == .float32 ? $0 : $0.converted(to: .float32) } }
        return TrainingState(optimizer: c.kind.rawValue, hyperparameters: Dictionary(uniqueKeysWithValues: c.values.map { ($0.key, $0.value) }),
                             slots: cleaned, parameters: parameters, step: step)
    }

    /// Writes the state as a PyTorch optimizer state dict that `optimizer.load_state_dict` accepts
    /// for a model whose parameters come in `state.parameters` order.
    public static func exportTorch(_ state: TrainingState, to path: String) throws(TrainingError) {
        let c = try config(from: state)
        let kind: TorchOptimizerState.Kind = switch c.kind {
        case .sgd: .sgd
        case .rmsprop: .rmsprop
        case .adam: .adam
        case .adamw: .adamw
        }
        var hyper: [String: TorchValue] = ["lr": .float(c.lr), "weight_decay": .float(c.weightDecay)]
        switch c.kind {
        case .sgd:
            hyper["momentum"] = .float(c.momentum); hyper["dampening"] = .float(c.dampening); hyper["nesterov"] = .bool(c.nesterov)
        case .rmsprop:
            hyper["momentum"] = .float(c.momentum); hyper["alpha"] = .float(c.alpha); hyper["eps"] = .float(c.eps); hyper["centered"] = .bool(c.centered)
        case .adam, .adamw:
            hyper["betas"] = .tuple([.float(c.beta1), .float(c.beta2)]); hyper["eps"] = .float(c.eps); hyper["amsgrad"] = .bool(c.amsgrad)
        }
        let value = TorchOptimizerState(kind: kind, parameterNames: state.parameters, slots: state.slots, hyperparameters: hyper).torchValue
        do { try TorchWriter.write(value, to: path) } catch { throw .torch(error) }
    }

    /// Writes the trainer's model and state to `path` atomically.
    public static func save(_ t: Trainer, settings: [String: String], callbacks: [String: [String: String]] = [:],
                            bestWeights: [String: Tensor] = [:], to path: String) throws(TrainingError) {
        do { try checkpoint(of: t, settings: settings, callbacks: callbacks, bestWeights: bestWeights).write(to: path) } catch { throw .checkpoint(error) }
    }

    /// Writes the training state of the `.ckpt` at `checkpoint` as a PyTorch optimizer state dict.
    public static func exportTorchState(checkpoint: String, to path: String) throws(TrainingError) {
        let c: Checkpoint
        do { c = try Checkpoint(contentsOf: checkpoint, checkOps: false) } catch { throw .checkpoint(error) }
        guard let state = c.training else {
            throw .badState("\(checkpoint) holds no optimizer state (train it first, or attach a PyTorch optimizer's state to it)")
        }
        try exportTorch(state, to: path)
    }
}
