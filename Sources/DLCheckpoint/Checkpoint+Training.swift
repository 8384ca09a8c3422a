import DLSupport
import DLTensor

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
        if let (k, v) = hyperparameters.first(where: { !$0.value.isFinite }) {
            throw .invalidMetadata(path: path, key: Self.optimizerKey, reason: "could not be encoded: hyperparameter '\(k)' is \(v)")
        }
        func strings(_ list: [String]) -> JSON { .array(list.map { .string($0) }) }
        func table(_ d: [String: String]) -> JSON { .object(d.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }) }
        let opt = JSON.object([
            ("hyperparameters", .object(hyperparameters.sorted { $0.key < $1.key }.map { ($0.key, JSON.float($0.value)) })),
            ("kind", .string(optimizer)), ("parameters", strings(parameters)), ("slots", strings(slotNames.sorted())),
        ])
        var prog: [(String, JSON)] = [("batch_in_epoch", .int(batchInEpoch))]
        if !bestWeights.isEmpty { prog.append(("best_weights", strings(bestWeights.keys.sorted()))) }
        if !callbacks.isEmpty { prog.append(("callbacks", .object(callbacks.sorted { $0.key < $1.key }.map { ($0.key, table($0.value)) }))) }
        prog += [("epoch", .int(epoch)), ("rng_state", strings(rngState.map { String($0, radix: 16) })), ("settings", table(settings))]
        if let seed = shuffleSeed { prog.append(("shuffle_seed", .string(String(seed, radix: 16)))) }
        prog.append(("step", .int(step)))
        return ([Self.optimizerKey: opt.serialized(), Self.progressKey: JSON.object(prog).serialized()], tensors)
    }

    /// Reads the state from a file's metadata and tensors; nil when the file has none.
    static func decode(metadata: [String: String], tensor: (String) throws(CheckpointError) -> Tensor?, path: String) throws(CheckpointError) -> TrainingState? {
        guard let optText = metadata[optimizerKey] else { return nil }
        guard let progText = metadata[progressKey] else { throw .invalidMetadata(path: path, key: progressKey, reason: "is missing while '\(optimizerKey)' is present") }
        let opt = try Fields(metadata: optText, key: optimizerKey, path: path)
        let prog = try Fields(metadata: progText, key: progressKey, path: path)
        let kind = try opt.string("kind")
        var hyperparameters: [String: Double] = [:]
        for (k, v) in try opt.members("hyperparameters") {
            guard let d = v.doubleValue else { throw opt.bad("hyperparameter '\(k)' is \(v.kindDescription), not a number") }
            hyperparameters[k] = d
        }
        let parameters = try opt.strings("parameters"), slotNames = try opt.strings("slots")
        let step = try prog.int("step"), epoch = try prog.int("epoch"), batchInEpoch = try prog.int("batch_in_epoch")
        guard step >= 0, epoch >= 0, batchInEpoch >= 0 else {
            throw .invalidMetadata(path: path, key: progressKey, reason: "has a negative step, epoch or batch position")
        }
        let rngWords = try prog.strings("rng_state")
        let shuffleText = try prog.optionalString("shuffle_seed")
        let settings = try prog.table(prog.members("settings"), "settings")
        var callbacks: [String: [String: String]] = [:]
        if prog.json["callbacks"] != nil {
            for (name, v) in try prog.members("callbacks") {
                guard case .object(let m) = v else { throw prog.bad("callback '\(name)' is \(v.kindDescription), not an object") }
                callbacks[name] = try prog.table(m.map { ($0.key, $0.value) }, "callbacks.\(name)")
            }
        }
        let bestNames = prog.json["best_weights"] == nil ? [] : try prog.strings("best_weights")
        var rng: [UInt64] = []
        for w in rngWords {
            guard let v = UInt64(w, radix: 16) else { throw .invalidMetadata(path: path, key: progressKey, reason: "rng_state word '\(w)' is not hexadecimal") }
            rng.append(v)
        }
        var seed: UInt64?
        if let s = shuffleText {
            guard let v = UInt64(s, radix: 16) else { throw .invalidMetadata(path: path, key: progressKey, reason: "shuffle_seed '\(s)' is not hexadecimal") }
            seed = v
        }
        var slots: [String: [String: Tensor]] = [:]
        for p in parameters {
            for k in slotNames {
                if let t = try tensor("\(slotPrefix)\(p)/\(k)") { slots[p, default: [:]][k] = t }
            }
        }
        var state = TrainingState(optimizer: kind, hyperparameters: hyperparameters, slots: slots, parameters: parameters,
                                  step: step, epoch: epoch, batchInEpoch: batchInEpoch, rngState: rng, shuffleSeed: seed,
                                  settings: settings)
        state.callbacks = callbacks
        for name in bestNames {
            guard let t = try tensor("\(bestPrefix)\(name)") else {
                throw .invalidMetadata(path: path, key: progressKey, reason: "lists best weights for '\(name)' but the file has none")
            }
            state.bestWeights[name] = t
        }
        return state
    }
}

/// One metadata entry's JSON object, read field by field; every mismatch names the entry and the
/// field (formats/ckpt.md, "Training state").
private struct Fields {
    let json: JSON
    let key: String
    let path: String

    init(metadata text: String, key: String, path: String) throws(CheckpointError) {
        self.key = key
        self.path = path
        do { json = try JSONParser.parse(text) } catch { throw .invalidMetadata(path: path, key: key, reason: "is not JSON: \(error)") }
        guard case .object = json else { throw .invalidMetadata(path: path, key: key, reason: "is \(json.kindDescription), not a JSON object") }
    }

    func bad(_ reason: String) -> CheckpointError { .invalidMetadata(path: path, key: key, reason: reason) }

    func field(_ name: String) throws(CheckpointError) -> JSON {
        guard let v = json[name] else { throw bad("has no field '\(name)'") }
        return v
    }

    func string(_ name: String) throws(CheckpointError) -> String {
        let v = try field(name)
        guard let s = v.stringValue else { throw bad("field '\(name)' is \(v.kindDescription), not a string") }
        return s
    }

    func optionalString(_ name: String) throws(CheckpointError) -> String? {
        guard let v = json[name], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw bad("field '\(name)' is \(v.kindDescription), not a string") }
        return s
    }

    func int(_ name: String) throws(CheckpointError) -> Int {
        let v = try field(name)
        guard case .number(let text) = v, let i = Int(text) else { throw bad("field '\(name)' is \(v.kindDescription), not an integer") }
        return i
    }

    func strings(_ name: String) throws(CheckpointError) -> [String] {
        let v = try field(name)
        guard let items = v.arrayValue else { throw bad("field '\(name)' is \(v.kindDescription), not an array of strings") }
        var out: [String] = []
        for item in items {
            guard let s = item.stringValue else { throw bad("field '\(name)' holds \(item.kindDescription), not only strings") }
            out.append(s)
        }
        return out
    }

    func members(_ name: String) throws(CheckpointError) -> [(String, JSON)] {
        let v = try field(name)
        guard case .object(let m) = v else { throw bad("field '\(name)' is \(v.kindDescription), not an object") }
        return m.map { ($0.key, $0.value) }
    }

    func table(_ members: [(String, JSON)], _ name: String) throws(CheckpointError) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in members {
            guard let s = v.stringValue else { throw bad("'\(name).\(k)' is \(v.kindDescription), not a string") }
            out[k] = s
        }
        return out
    }
}
