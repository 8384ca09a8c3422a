import DLGraph
import DLRuntime
import DLTensor

/// Reverse-mode differentiation of a graph.
///
/// Built once per graph and set of trainable values: it orders the nodes, finds every value that
/// depends on a trainable one, and checks that each node on such a path has a gradient rule (the
/// error lists the ops that have none). `forward` runs the nodes one by one through the runtime's
/// kernels and records them on a `Tape` (keeping every intermediate value); `backward` walks the
/// tape in reverse, applying one rule per node and summing the gradients that reach each value.
public struct Differentiator: Sendable {
    public let graph: Graph
    /// The values gradients are taken with respect to, in graph initializer order (then inputs).
    public let wrt: [String]
    /// Values that depend on something in `wrt` (gradients flow through them).
    let active: Set<String>
    let opset: Int?

    /// - Parameters:
    ///   - graph: the model; initializers are its parameters.
    ///   - wrt: names of initializers (or inputs) to differentiate with respect to.
    /// - Throws: `.noGradientRule` listing ops on a path from `wrt` to an output without a rule.
    public init(graph: Graph, wrt: [String]) throws(AutogradError) {
        var g = graph
        do { try g.verifyAndSort(outerScope: []) } catch { throw .runtime(.invalidGraph(error)) }
        NormalForm.normalise(&g)
        let known = Set(g.initializers.names).union(g.inputs.map(\.name))
        for w in wrt where !known.contains(w) { throw .unknownValue(w) }
        var active = Set(wrt)
        var missing: [String: Int] = [:]
        for n in g.nodes {
            let differentiable = Rules.differentiableInputs(n)
            let feeds = n.inputs.enumerated().contains { i, v in !v.isEmpty && active.contains(v) && differentiable(i) }
            guard feeds, !Rules.stopsGradient(n) else { continue }
            if Rules.table[n.opType] == nil || !OpSet.isDefaultDomain(n) {
                missing[n.opType, default: 0] += 1
                continue
            }
            for (k, o) in n.outputs.enumerated() where !o.isEmpty && Rules.outputIsDifferentiable(n, k) { active.insert(o) }
        }
        guard missing.isEmpty else { throw .noGradientRule(missing) }
        for n in g.nodes where !NodeRunner.canRun(n) && !Rules.hasTrainingForward(n) {
            throw .runtime(.invalidGraph(.unsupportedOps([n.opType: 1])))
        }
        self.graph = g
        self.wrt = wrt
        self.active = active
        opset = graph.metadata.onnxOpset
    }

    /// Runs the graph forward and records every node.
    /// - Parameters:
    ///   - inputs: graph inputs, and overrides of initializers (the current parameter values).
    ///   - training: Dropout and BatchNormalization run in training mode (random masks from `rng`,
    ///     batch statistics); their updated running statistics are in `tape.updatedState`.
    public func forward(_ inputs: [String: Tensor], training: Bool = false, rng: inout TrainingRNG) throws(AutogradError) -> Tape {
        var values: [String: Tensor] = [:]
        for (name, t) in graph.initializers { values[name] = t }
        for (name, t) in inputs { values[name] = t }
        for v in graph.inputs where values[v.name] == nil { throw .invalidInput(node: "input '\(v.name)'", reason: "is missing") }
        var records: [Tape.Record] = []
        records.reserveCapacity(graph.nodes.count)
        var updated: [String: Tensor] = [:]
        for node in graph.nodes {
            let args: [Tensor?] = node.inputs.map { $0.isEmpty ? nil : values[$0] }
            var saved: [Tensor] = []
            var kept: (any Sendable)?
            let outs: [Tensor]
            if training, let special = Rules.trainingForward[node.opType], let r = try special(node, args, &rng) {
                outs = r.outputs
                saved = r.saved
                kept = r.kept
                for (name, t) in r.stateUpdates { updated[name] = t }
            } else {
                do { outs = try NodeRunner.run(node, inputs: args, opset: opset) } catch { throw .runtime(error) }
            }
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { values[name] = t }
            records.append(Tape.Record(node: node, inputs: args, outputs: outs, saved: saved, kept: kept))
        }
        return Tape(values: values, records: records, updatedState: updated, training: training)
    }

    /// Gradients of `seeds` (output name → gradient of the loss with respect to that output) with
    /// respect to every name in `wrt`; a parameter the seeds do not reach gets zeros.
    public func backward(_ tape: Tape, seeds: [String: Tensor]) throws(AutogradError) -> [String: Tensor] {
        var grads: [String: Tensor] = [:]
        for (name, g) in seeds {
            guard let v = tape.values[name] else { throw .unknownValue(name) }
            guard v.shape == g.shape else { throw .shapeMismatch(value: name, expected: v.shape, actual: g.shape) }
            grads[name] = g
        }
        for record in tape.records.reversed() {
            let node = record.node
            let outGrads = node.outputs.map { $0.isEmpty ? nil : grads[$0] }
            guard outGrads.contains(where: { $0 != nil }) else { continue }
            let differentiable = Rules.differentiableInputs(node)
            let needs = node.inputs.enumerated().map { i, v in !v.isEmpty && active.contains(v) && differentiable(i) }
            guard needs.contains(true), !Rules.stopsGradient(node), let rule = Rules.table[node.opType] else { continue }
            let ctx = RuleContext(node: node, inputs: record.inputs, outputs: record.outputs, outputGrads: outGrads,
                                  needs: needs, saved: record.saved, kept: record.kept, training: tape.training, opset: opset)
            let inGrads = try rule(ctx)
            for (i, name) in node.inputs.enumerated() where needs[i] {
                guard i < inGrads.count, let g = inGrads[i] else { continue }
                if let existing = grads[name] {
                    grads[name] = Ops.add(existing, g)
                } else {
                    grads[name] = g
                }
            }
            // Intermediate gradients are no longer needed once their producer has run.
            for o in node.outputs where !seeds.keys.contains(o) && !wrt.contains(o) { grads[o] = nil }
        }
        var out: [String: Tensor] = [:]
        for w in wrt {
            let shape = tape.values[w]?.shape ?? []
            out[w] = grads[w] ?? Tensor(zeros: .float32, shape: shape)
        }
        return out
    }
}

/// What a forward pass recorded: every value by name, and per node its inputs and outputs.
public struct Tape: Sendable {
    struct Record: Sendable {
        let node: Node
        let inputs: [Tensor?]
        let outputs: [Tensor]
        /// What a training-mode forward kept for its rule (a dropout mask, batch statistics).
        let saved: [Tensor]
        /// Working values a training-mode forward hands its rule as they are (LSTM/GRU gates).
        let kept: (any Sendable)?
    }
    public let values: [String: Tensor]
    let records: [Record]
    /// New values of state a training forward updates (BatchNormalization running mean/variance),
    /// by the name of the initializer they replace.
    public let updatedState: [String: Tensor]
    public let training: Bool

    public func value(_ name: String) -> Tensor? { values[name] }
}

/// A small seeded generator (xoshiro256**) whose whole state can be saved and restored, so a
/// resumed run draws the same numbers as one that never stopped.
public struct TrainingRNG: Sendable, RandomNumberGenerator, Equatable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var s = seed
        var st: [UInt64] = []
        for _ in 0..<4 {
            // splitmix64 expands the seed
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            st.append(z ^ (z >> 31))
        }
        state = st
    }

    /// Restores a saved state; nil unless it is four words, not all zero.
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        self.state = state
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// A uniform float in [0, 1) from 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension Differentiator {
    /// The float initializers gradients can reach: those feeding a differentiable input of some
    /// node (not BatchNormalization's running statistics, shapes or indices), in initializer order.
    public static func trainableParameters(of graph: Graph) -> [String] {
        var used = Set<String>()
        for n in graph.nodes {
            let differentiable = Rules.differentiableInputs(n)
            for (i, v) in n.inputs.enumerated() where !v.isEmpty && differentiable(i) && !Rules.stopsGradient(n) { used.insert(v) }
        }
        return graph.initializers.names.filter { name in
            used.contains(name) && (graph.initializers[name]?.dtype.isFloatingPoint ?? false)
        }
    }

    /// Whether `name` matches a shell-style pattern (`*` any run, `?` one character).
    public static func glob(_ pattern: String, matches name: String) -> Bool {
        let p = Array(pattern), s = Array(name)
        var pi = 0, si = 0, star = -1, mark = 0
        while si < s.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == s[si]) { pi += 1; si += 1 }
            else if pi < p.count && p[pi] == "*" { star = pi; mark = si; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; si = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
