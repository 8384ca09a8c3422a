import DLTensor

/// A PyTorch optimizer `state_dict()`: `{'state': {index: {slot: value}}, 'param_groups':
/// [{hyperparameters..., 'params': [index, ...]}]}`, for SGD (`momentum_buffer`), Adam and AdamW
/// (`step`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`) and RMSprop (`step`, `square_avg`,
/// `momentum_buffer`, `grad_avg`).
///
/// Parameters are numbered in the order the groups list them, which is the order of
/// `model.parameters()`: `slots(parameterNames:)` maps indices onto names with that order, and
/// `init(kind:parameterNames:slots:)` builds a state dict torch's `optimizer.load_state_dict`
/// accepts for a model whose parameters come in that order.
public struct TorchOptimizerState: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case sgd, adam, adamw, rmsprop
    }

    public struct Group: Sendable {
        /// Every key of the group but `params`, in order (`lr`, `betas`, ...).
        public var hyperparameters: [TorchDictEntry]
        public var params: [Int]

        public subscript(key: String) -> TorchValue? {
            hyperparameters.last { $0.key.keyComponent == key }?.value
        }
    }

    /// The optimizer, recognised from the group keys (nil when none of the four fits).
    public var kind: Kind?
    public var groups: [Group]
    /// Per parameter index, its slots in order; values are tensors (or numbers, as old files store `step`).
    public var state: [Int: [TorchDictEntry]]

    /// Reads an optimizer state dict from a value of a `TorchFile` (e.g. `file.value(at: "optimizer")`).
    /// Tensors are read from `file`.
    public init(_ value: TorchValue, file: TorchFile) throws(TorchError) {
        let path = file.path
        func bad(_ d: String) -> TorchError { .notAStateDict(path: path, detail: "not an optimizer state_dict: \(d)") }
        guard case .list(let groupValues)? = value["param_groups"] else { throw bad("no 'param_groups' list") }
        guard case .dict(let stateEntries)? = value["state"] else { throw bad("no 'state' dict") }
        var groups: [Group] = []
        for g in groupValues {
            guard case .dict(let entries) = g else { throw bad("a param group is \(g.kindDescription)") }
            var params: [Int] = []
            var hyper: [TorchDictEntry] = []
            for e in entries {
                if e.key.keyComponent == "params" {
                    guard case .list(let ps) = e.value else { throw bad("'params' is not a list") }
                    for p in ps {
                        guard case .int(let i) = p else { throw bad("a parameter index is \(p.kindDescription)") }
                        params.append(i)
                    }
                } else {
                    hyper.append(e)
                }
            }
            groups.append(Group(hyperparameters: hyper, params: params))
        }
        var state: [Int: [TorchDictEntry]] = [:]
        for e in stateEntries {
            guard case .int(let i) = e.key, case .dict(let slots) = e.value else { throw bad("a state entry is not index → dict") }
            var read: [TorchDictEntry] = []
            for s in slots {
                guard let name = s.key.keyComponent else { throw bad("a slot name is \(s.key.kindDescription)") }
                if case .tensor(let ref) = s.value {
                    read.append(TorchDictEntry(s.key, .tensorData(try file.tensor(ref, name: "state.\(i).\(name)"))))
                } else {
                    read.append(s)
                }
            }
            state[i] = read
        }
        self.groups = groups
        self.state = state
        kind = Self.recognise(groups.first)
    }

    /// Which optimizer wrote a group, from the keys only that one has.
    static func recognise(_ g: Group?) -> Kind? {
        guard let g else { return nil }
        if g["alpha"] != nil, g["centered"] != nil { return .rmsprop }
        if g["betas"] != nil {
            if case .bool(true)? = g["decoupled_weight_decay"] { return .adamw }
            return .adam
        }
        if g["dampening"] != nil, g["nesterov"] != nil { return .sgd }
        return nil
    }

    /// The parameter indices in group order.
    public var parameterOrder: [Int] { groups.flatMap(\.params) }

    /// The slot tensors of each parameter by name: the i-th name goes with the i-th index in group
    /// order. Numbers (an old-style `step`) become 0-dim float32 tensors.
    /// - Throws: `.notAStateDict` when the counts differ.
    public func slots(parameterNames names: [String], path: String = "optimizer") throws(TorchError) -> [String: [String: Tensor]] {
        let order = parameterOrder
        guard order.count == names.count else {
            throw .notAStateDict(path: path, detail: "the optimizer has \(order.count) parameters, but \(names.count) names were given")
        }
        var out: [String: [String: Tensor]] = [:]
        for (index, name) in zip(order, names) {
            var slots: [String: Tensor] = [:]
            for e in state[index] ?? [] {
                guard let key = e.key.keyComponent else { continue }
                switch e.value {
                case .tensorData(let t): slots[key] = t
                case .int(let i): slots[key] = Tensor(scalar: Float(i))
                case .float(let f): slots[key] = Tensor(scalar: Float(f))
                default: continue
                }
            }
            out[name] = slots
        }
        return out
    }

    /// A state for `kind` with torch 2.13's default hyperparameters (overridden by `hyperparameters`),
    /// one group holding every parameter, and each parameter's slot tensors (`exp_avg`, `step`, ...).
    /// Parameters without slots (never stepped) get no state entry, as in torch.
    public init(kind: Kind, parameterNames: [String], slots: [String: [String: Tensor]], hyperparameters: [String: TorchValue] = [:]) {
        var hyper = Self.defaults(kind)
        for i in hyper.indices {
            if let k = hyper[i].key.keyComponent, let v = hyperparameters[k] { hyper[i].value = v }
        }
        for (k, v) in hyperparameters.sorted(by: { $0.key < $1.key }) where !hyper.contains(where: { $0.key.keyComponent == k }) {
            hyper.append(TorchDictEntry(.string(k), v))
        }
        self.kind = kind
        groups = [Group(hyperparameters: hyper, params: Array(parameterNames.indices))]
        var state: [Int: [TorchDictEntry]] = [:]
        let order = Self.slotOrder(kind)
        for (i, name) in parameterNames.enumerated() {
            guard let s = slots[name], !s.isEmpty else { continue }
            let names = order.filter { s[$0] != nil } + s.keys.filter { !order.contains($0) }.sorted()
            state[i] = names.compactMap { n in s[n].map { TorchDictEntry(.string(n), .tensorData($0)) } }
        }
        self.state = state
    }

    /// The value to pickle: `{'state': {...}, 'param_groups': [...]}`.
    public var torchValue: TorchValue {
        let stateValue: TorchValue = .dict(state.keys.sorted().map { i in TorchDictEntry(.int(i), .dict(state[i] ?? [])) })
        let groupsValue: TorchValue = .list(groups.map { g in
            .dict(g.hyperparameters + [TorchDictEntry(.string("params"), .list(g.params.map { .int($0) }))])
        })
        return .dict([TorchDictEntry(.string("state"), stateValue), TorchDictEntry(.string("param_groups"), groupsValue)])
    }

    static func slotOrder(_ kind: Kind) -> [String] {
        switch kind {
        case .sgd: ["momentum_buffer"]
        case .adam, .adamw: ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        case .rmsprop: ["step", "square_avg", "momentum_buffer", "grad_avg"]
        }
    }

    /// torch 2.13's `param_groups[0]` keys and defaults for each optimizer (`lr` 0.001, SGD 0.001 too).
    static func defaults(_ kind: Kind) -> [TorchDictEntry] {
        func e(_ k: String, _ v: TorchValue) -> TorchDictEntry { TorchDictEntry(.string(k), v) }
        switch kind {
        case .sgd:
            return [e("lr", .float(0.001)), e("momentum", .int(0)), e("dampening", .int(0)), e("weight_decay", .int(0)),
                    e("nesterov", .bool(false)), e("maximize", .bool(false)), e("foreach", .none), e("differentiable", .bool(false)),
                    e("fused", .none)]
        case .adam, .adamw:
            return [e("lr", .float(0.001)), e("betas", .tuple([.float(0.9), .float(0.999)])), e("eps", .float(1e-8)),
                    e("weight_decay", kind == .adamw ? .float(0.01) : .int(0)), e("amsgrad", .bool(false)), e("maximize", .bool(false)),
                    e("foreach", .none), e("capturable", .bool(false)), e("differentiable", .bool(false)), e("fused", .none),
                    e("decoupled_weight_decay", .bool(kind == .adamw))]
        case .rmsprop:
            return [e("lr", .float(0.01)), e("momentum", .int(0)), e("alpha", .float(0.99)), e("eps", .float(1e-8)),
                    e("centered", .bool(false)), e("weight_decay", .int(0)), e("capturable", .bool(false)), e("foreach", .none),
                    e("maximize", .bool(false)), e("differentiable", .bool(false))]
        }
    }
}
