import DLTensor
import Foundation

/// The training state a `.ckpt` may carry besides the model (formats/ckpt.md, "Training state"):
/// the optimizer (kind, hyperparameters, per-parameter slot tensors), progress (step, epoch,
/// position in the epoch, generator state, shuffle seed) and the settings of the run.
public struct TrainingState: Sendable, Equatable {
    /// `sgd`, `rmsprop`, `adam` or `adamw`.
    public var optimizer: String
    /// Hyperparameters by PyTorch's group key (`lr`, `momentum`, `beta1`, ...); booleans as 0/1.
    public var hyperparameters: [String: Double]
    /// Parameter name → slot name (`exp_avg`, `step`, ...) → tensor.
    public var slots: [String: [String: Tensor]]
    /// The trained parameters, in order (PyTorch's `model.parameters()` order).
    public var parameters: [String]
    public var step: Int
    public var epoch: Int
    public var batchInEpoch: Int
    /// The training generator's state (four words).
    public var rngState: [UInt64]
    public var shuffleSeed: UInt64?
    /// Settings of the run (loss, batch size, input and target names, ...), as given.
    public var settings: [String: String]
    /// Each callback's state (early stopping, best checkpoint, plateau), by callback name.
    public var callbacks: [String: [String: String]] = [:]
    /// The weights of the best epoch so far, kept for early stopping's `restore_best`.
    public var bestWeights: [String: Tensor] = [:]

    public init(optimizer: String, hyperparameters: [String: Double], slots: [String: [String: Tensor]], parameters: [String],
                step: Int = 0, epoch: Int = 0, batchInEpoch: Int = 0, rngState: [UInt64] = [], shuffleSeed: UInt64? = nil,
                settings: [String: String] = [:]) {
        self.optimizer = optimizer
        self.hyperparameters = hyperparameters
        self.slots = slots
        self.parameters = parameters
        self.step = step
        self.epoch = epoch
        self.batchInEpoch = batchInEpoch
        self.rngState = rngState
        self.shuffleSeed = shuffleSeed
        self.settings = settings
    }

    public static func == (a: TrainingState, b: TrainingState) -> Bool {
        guard a.optimizer == b.optimizer, a.hyperparameters == b.hyperparameters, a.parameters == b.parameters, a.step == b.step,
              a.epoch == b.epoch, a.batchInEpoch == b.batchInEpoch, a.rngState == b.rngState, a.shuffleSeed == b.shuffleSeed,
              a.settings == b.settings, a.callbacks == b.callbacks, a.slots.keys.sorted() == b.slots.keys.sorted(),
              a.bestWeights.keys.sorted() == b.bestWeights.keys.sorted() else { return false }
        for (k, t) in a.bestWeights { guard let u = b.bestWeights[k], t.bitwiseEqual(u) else { return false } }
        for (p, s) in a.slots {
            guard let o = b.slots[p], o.keys.sorted() == s.keys.sorted() else { return false }
            for (k, t) in s { guard let u = o[k], t.bitwiseEqual(u) else { return false } }
        }
        return true
    }

    static let slotPrefix = "dlkit.optimizer/"
    static let bestPrefix = "dlkit.best/"
    static let optimizerKey = "dlkit.optimizer"
    static let progressKey = "dlkit.progress"

    struct OptimizerJSON: Codable {
        var kind: String
        var hyperparameters: [String: Double]
        var parameters: [String]
        var slots: [String]
    }

    struct ProgressJSON: Codable {
        var step: Int
        var epoch: Int
        var batch_in_epoch: Int
        var rng_state: [String]
        var shuffle_seed: String?
        var settings: [String: String]
        var callbacks: [String: [String: String]]?
        var best_weights: [String]?
    }

    /// Metadata entries and tensors to store.
    func encoded(path: String) throws(CheckpointError) -> (metadata: [String: String], tensors: [(name: String, tensor: Tensor)]) {
        var tensors: [(name: String, tensor: Tensor)] = []
        var slotNames = Set<String>()
        for p in parameters {
            for (k, t) in (slots[p] ?? [:]).sorted(by: { $0.key < $1.key }) {
                tensors.append(("\(Self.slotPrefix)\(p)/\(k)", t))
                slotNames.insert(k)
            }
        }
        for (name, t) in bestWeights.sorted(by: { $0.key < $1.key }) { tensors.append(("\(Self.bestPrefix)\(name)", t)) }
        let opt = OptimizerJSON(kind: optimizer, hyperparameters: hyperparameters, parameters: parameters, slots: slotNames.sorted())
        let prog = ProgressJSON(step: step, epoch: epoch, batch_in_epoch: batchInEpoch, rng_state: rngState.map { String($0, radix: 16) },
                                shuffle_seed: shuffleSeed.map { String($0, radix: 16) }, settings: settings,
                                callbacks: callbacks.isEmpty ? nil : callbacks, best_weights: bestWeights.isEmpty ? nil : bestWeights.keys.sorted())
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        do {
            return ([Self.optimizerKey: String(decoding: try enc.encode(opt), as: UTF8.self),
                     Self.progressKey: String(decoding: try enc.encode(prog), as: UTF8.self)], tensors)
        } catch { throw .invalidMetadata(path: path, key: Self.optimizerKey, reason: "could not be encoded: \(error)") }
    }

    /// Reads the state from a file's metadata and tensors; nil when the file has none.
    static func decode(metadata: [String: String], tensor: (String) throws(CheckpointError) -> Tensor?, path: String) throws(CheckpointError) -> TrainingState? {
        guard let optText = metadata[optimizerKey] else { return nil }
        guard let progText = metadata[progressKey] else { throw .invalidMetadata(path: path, key: progressKey, reason: "is missing while '\(optimizerKey)' is present") }
        guard let opt = try? JSONDecoder().decode(OptimizerJSON.self, from: Data(optText.utf8)) else {
            throw .invalidMetadata(path: path, key: optimizerKey, reason: "is not the JSON object formats/ckpt.md describes")
        }
        guard let prog = try? JSONDecoder().decode(ProgressJSON.self, from: Data(progText.utf8)) else {
            throw .invalidMetadata(path: path, key: progressKey, reason: "is not the JSON object formats/ckpt.md describes")
        }
        guard prog.step >= 0, prog.epoch >= 0, prog.batch_in_epoch >= 0 else {
            throw .invalidMetadata(path: path, key: progressKey, reason: "has a negative step, epoch or batch position")
        }
        var rng: [UInt64] = []
        for w in prog.rng_state {
            guard let v = UInt64(w, radix: 16) else { throw .invalidMetadata(path: path, key: progressKey, reason: "rng_state word '\(w)' is not hexadecimal") }
            rng.append(v)
        }
        var seed: UInt64?
        if let s = prog.shuffle_seed {
            guard let v = UInt64(s, radix: 16) else { throw .invalidMetadata(path: path, key: progressKey, reason: "shuffle_seed '\(s)' is not hexadecimal") }
            seed = v
        }
        var slots: [String: [String: Tensor]] = [:]
        for p in opt.parameters {
            for k in opt.slots {
                if let t = try tensor("\(slotPrefix)\(p)/\(k)") { slots[p, default: [:]][k] = t }
            }
        }
        var state = TrainingState(optimizer: opt.kind, hyperparameters: opt.hyperparameters, slots: slots, parameters: opt.parameters,
                                  step: prog.step, epoch: prog.epoch, batchInEpoch: prog.batch_in_epoch, rngState: rng, shuffleSeed: seed,
                                  settings: prog.settings)
        state.callbacks = prog.callbacks ?? [:]
        for name in prog.best_weights ?? [] {
            guard let t = try tensor("\(bestPrefix)\(name)") else {
                throw .invalidMetadata(path: path, key: progressKey, reason: "lists best weights for '\(name)' but the file has none")
            }
            state.bestWeights[name] = t
        }
        return state
    }
}
