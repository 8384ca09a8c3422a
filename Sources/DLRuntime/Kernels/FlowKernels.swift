import DLGraph
import DLTensor

/// Control flow (If, Loop, Scan, SequenceMap), sequences and optionals. These run on
/// `GraphValue`s; subgraphs run through `KernelContext.runSubgraph`, seeing the enclosing scope.
enum FlowKernels {
    /// Tensor kernels of this family (strings, random, recurrent, text, ml, training, images).
    static var all: [KernelEntry] {
        RecurrentKernels.all + StringKernels.all + MLKernels.all + ImageKernels.all
    }

    static var values: [(String, ValueKernel)] {
        [
            ("If", ifKernel), ("Loop", loop), ("Scan", scan), ("SequenceMap", sequenceMap),
            ("SequenceEmpty", { _ throws(RuntimeError) in [.sequence([])] }),
            ("SequenceConstruct", { ctx throws(RuntimeError) in
                [.sequence(try (0..<ctx.inputCount).map { (i) throws(RuntimeError) in .tensor(try ctx.input(i)) })]
            }),
            ("SequenceInsert", sequenceInsert), ("SequenceErase", sequenceErase), ("SequenceAt", sequenceAt),
            ("SequenceLength", { ctx throws(RuntimeError) in
                [.tensor(Tensor(scalar: Int64(try ctx.sequence(0).count)))]
            }),
            ("SplitToSequence", splitToSequence), ("ConcatFromSequence", concatFromSequence),
            ("Optional", { ctx throws(RuntimeError) in
                [.optional(ctx.values.first ?? nil)]
            }),
            ("OptionalHasElement", { ctx throws(RuntimeError) in
                let has: Bool
                switch ctx.values.first ?? nil {
                case nil, .optional(nil)?: has = false
                default: has = true
                }
                return [.tensor(Tensor(scalar: has))]
            }),
            ("OptionalGetElement", { ctx throws(RuntimeError) in
                switch ctx.values.first ?? nil {
                case nil, .optional(nil)?: throw ctx.fail("the optional is empty")
                case .optional(let v?)?: return [v]
                case let v?: return [v]
                }
            }),
            // Identity passes sequences and optionals through as well as tensors.
            ("Identity", { ctx throws(RuntimeError) in
                guard let v = ctx.values.first ?? nil else { throw ctx.fail("input 0 is missing") }
                return [v]
            }),
        ] + StringKernels.values
    }

    // MARK: control flow

    static func ifKernel(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let cond = try ctx.input(0)
        guard cond.elementCount == 1 else { throw ctx.fail("the condition must hold one element, got shape \(cond.shape)") }
        let branch = cond.bools().first == true ? "then_branch" : "else_branch"
        return try ctx.runSubgraph(branch, [])
    }

    static func loop(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let tripCount: Int64? = try ctx.optionalInput(0).map { (t) throws(RuntimeError) in
            guard t.elementCount == 1, t.dtype.isInteger else { throw ctx.fail("the trip count must be one integer") }
            return t.int64s()[0]
        }
        var cond = true
        if let c = ctx.optionalInput(1) {
            guard c.elementCount == 1 else { throw ctx.fail("the condition must hold one element") }
            cond = c.bools()[0]
        }
        var state: [GraphValue] = []
        for i in 2..<max(2, ctx.inputCount) {
            guard let v = ctx.values[i] else { throw ctx.fail("loop-carried input \(i) is missing") }
            state.append(v)
        }
        var scans: [[Tensor]] = []
        var i: Int64 = 0
        while cond && (tripCount.map { i < $0 } ?? true) {
            let outs = try ctx.runSubgraph("body", [.tensor(Tensor(scalar: i)), .tensor(Tensor(scalar: cond))] + state)
            guard outs.count >= 1 + state.count else {
                throw ctx.fail("the body gives \(outs.count) outputs for \(state.count) loop-carried values")
            }
            guard let c = outs[0].tensor, c.elementCount == 1 else { throw ctx.fail("the body's condition output must be one element") }
            cond = c.bools()[0]
            state = Array(outs[1..<(1 + state.count)])
            let extra = outs[(1 + state.count)...]
            if scans.isEmpty { scans = Array(repeating: [], count: extra.count) }
            for (k, v) in extra.enumerated() {
                guard let t = v.tensor else { throw ctx.fail("scan output \(k) is a \(v.kindName), not a tensor") }
                if let first = scans[k].first, first.shape != t.shape || first.dtype != t.dtype {
                    throw ctx.fail("scan output \(k) changes shape between iterations (\(first.shape) then \(t.shape))")
                }
                scans[k].append(t)
            }
            i += 1
            if i > 100_000_000 { throw ctx.fail("the loop ran over 100 million iterations") }
        }
        var result = state
        for s in scans {
            guard let t = Tensor.stack(s, axis: 0) else { throw ctx.fail("cannot stack scan outputs") }
            result.append(.tensor(t))
        }
        // Scan outputs of a loop that never ran: empty along the iteration axis.
        while result.count < ctx.node.outputs.count { result.append(.tensor(Tensor(zeros: .float32, shape: [0]))) }
        return result
    }

    static func scan(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        if let v = ctx.opset, v < 9 { return try scan8(ctx) }
        let m = try ctx.int("num_scan_inputs", -1)
        guard m >= 1, m <= ctx.inputCount else { throw ctx.fail("num_scan_inputs \(m) does not fit \(ctx.inputCount) inputs") }
        let n = ctx.inputCount - m
        var state: [GraphValue] = []
        for i in 0..<n {
            guard let v = ctx.values[i] else { throw ctx.fail("state input \(i) is missing") }
            state.append(v)
        }
        let inAxes = try ctx.ints("scan_input_axes") ?? Array(repeating: 0, count: m)
        let inDirs = try ctx.ints("scan_input_directions") ?? Array(repeating: 0, count: m)
        guard inAxes.count == m, inDirs.count == m else { throw ctx.fail("scan_input_axes/directions must list \(m) values") }
        var scanInputs: [(Tensor, Int, Bool)] = []
        for k in 0..<m {
            let t = try ctx.input(n + k)
            scanInputs.append((t, try ctx.axis(inAxes[k], rank: t.rank), inDirs[k] == 1))
        }
        let (final, scans) = try scanSteps(ctx, state: state, inputs: scanInputs)
        let outAxes = try ctx.ints("scan_output_axes")
        let outDirs = try ctx.ints("scan_output_directions")
        var result = final
        for (k, s) in scans.enumerated() {
            let reversed = (outDirs.map { k < $0.count ? $0[k] : 0 } ?? 0) == 1
            let rank = (s.first?.rank ?? 0) + 1
            let axis = try ctx.axis(outAxes.map { k < $0.count ? $0[k] : 0 } ?? 0, rank: rank)
            guard let t = Tensor.stack(reversed ? s.reversed() : s, axis: axis) else { throw ctx.fail("cannot stack scan output \(k)") }
            result.append(.tensor(t))
        }
        return result
    }

    /// Scan before opset 9: input 0 is the optional sequence_lens, every state and scan input has
    /// a leading batch axis (scan inputs are [batch, seq, ...]), and `directions` per scan input.
    static func scan8(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let m = try ctx.int("num_scan_inputs", -1)
        guard m >= 1, m + 1 <= ctx.inputCount else { throw ctx.fail("num_scan_inputs \(m) does not fit \(ctx.inputCount) inputs") }
        let n = ctx.inputCount - 1 - m
        let states = try (0..<n).map { (i) throws(RuntimeError) in try ctx.input(1 + i) }
        let inputs = try (0..<m).map { (k) throws(RuntimeError) in try ctx.input(1 + n + k) }
        let dirs = try ctx.ints("directions") ?? Array(repeating: 0, count: m)
        guard dirs.count == m else { throw ctx.fail("directions must list \(m) values") }
        guard let batch = (states + inputs).first?.shape.first, (states + inputs).allSatisfy({ $0.shape.first == batch }),
              inputs.allSatisfy({ $0.rank >= 2 }) else { throw ctx.fail("states and scan inputs must share a leading batch axis") }
        let seq = inputs[0].shape[1]
        if let lens = try ctx.intList(0), lens.contains(where: { $0 != seq }) {
            throw ctx.unsupported("sequence_lens shorter than the scan inputs are not supported")
        }
        func row(_ t: Tensor, _ b: Int) throws(RuntimeError) -> Tensor {
            do { return try t.slice(axis: 0, start: b, length: 1).reshaped(to: Array(t.shape.dropFirst())) } catch { throw ctx.fail("\(error)") }
        }
        var finals: [[Tensor]] = Array(repeating: [], count: n)
        var scanOuts: [[Tensor]] = []
        for b in 0..<batch {
            let st = try states.map { (t) throws(RuntimeError) in GraphValue.tensor(try row(t, b)) }
            var ins: [(Tensor, Int, Bool)] = []
            for (k, t) in inputs.enumerated() { ins.append((try row(t, b), 0, dirs[k] == 1)) }
            let (final, scans) = try scanSteps(ctx, state: st, inputs: ins)
            for (i, v) in final.enumerated() {
                guard let t = v.tensor else { throw ctx.fail("state \(i) is not a tensor") }
                finals[i].append(t)
            }
            if scanOuts.isEmpty { scanOuts = Array(repeating: [], count: scans.count) }
            for (k, s) in scans.enumerated() {
                guard let t = Tensor.stack(s, axis: 0) else { throw ctx.fail("cannot stack scan output \(k)") }
                scanOuts[k].append(t)
            }
        }
        var result: [GraphValue] = []
        for parts in finals + scanOuts {
            guard let t = Tensor.stack(parts, axis: 0) else { throw ctx.fail("cannot stack outputs over the batch") }
            result.append(.tensor(t))
        }
        return result
    }

    /// Runs the body once per step over slices of the scan inputs (axis, reversed), carrying the
    /// state. Returns the final state and each scan output's per-step tensors.
    static func scanSteps(_ ctx: KernelContext, state initial: [GraphValue], inputs: [(Tensor, Int, Bool)])
        throws(RuntimeError) -> ([GraphValue], [[Tensor]])
    {
        var length: Int? = nil
        for (t, axis, _) in inputs {
            if let l = length, l != t.shape[axis] { throw ctx.fail("scan inputs differ in length (\(l) and \(t.shape[axis]))") }
            length = t.shape[axis]
        }
        let len = length ?? 0, n = initial.count
        var state = initial
        var scans: [[Tensor]] = []
        for step in 0..<len {
            var slices: [GraphValue] = []
            for (t, axis, reverse) in inputs {
                let at = reverse ? len - 1 - step : step
                var s = t.shape
                s.remove(at: axis)
                guard let v = try? t.slice(axis: axis, start: at, length: 1).reshaped(to: s) else { throw ctx.fail("cannot slice a scan input") }
                slices.append(.tensor(v))
            }
            let outs = try ctx.runSubgraph("body", state + slices)
            guard outs.count >= n else { throw ctx.fail("the body gives \(outs.count) outputs for \(n) states") }
            state = Array(outs[..<n])
            if scans.isEmpty { scans = Array(repeating: [], count: outs.count - n) }
            for (k, v) in outs[n...].enumerated() {
                guard let t = v.tensor else { throw ctx.fail("scan output \(k) is a \(v.kindName)") }
                if let first = scans[k].first, first.shape != t.shape { throw ctx.fail("scan output \(k) changes shape between iterations") }
                scans[k].append(t)
            }
        }
        return (state, scans)
    }

    static func sequenceMap(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let seq = try ctx.sequence(0)
        for i in 1..<max(1, ctx.inputCount) {
            if case .sequence(let s)? = ctx.values[i], s.count != seq.count {
                throw ctx.fail("input sequence \(i) has \(s.count) elements, the first has \(seq.count)")
            }
        }
        var outs: [[GraphValue]] = Array(repeating: [], count: ctx.node.outputs.count)
        for j in 0..<seq.count {
            var args: [GraphValue] = [seq[j]]
            for i in 1..<max(1, ctx.inputCount) {
                guard let v = ctx.values[i] else { throw ctx.fail("input \(i) is missing") }
                if case .sequence(let s) = v { args.append(s[j]) } else { args.append(v) }
            }
            let r = try ctx.runSubgraph("body", args)
            for k in 0..<min(r.count, outs.count) { outs[k].append(r[k]) }
        }
        return outs.map { .sequence($0) }
    }

    // MARK: sequences

    static func position(_ ctx: KernelContext, _ i: Int, count: Int, insert: Bool) throws(RuntimeError) -> Int? {
        guard let t = ctx.optionalInput(i) else { return nil }
        guard t.elementCount == 1, t.dtype.isInteger else { throw ctx.fail("the position must be one integer") }
        let p = Int(t.int64s()[0])
        let upper = insert ? count : count - 1
        guard p >= -count, p <= upper else { throw ctx.fail("position \(p) is outside a sequence of \(count)") }
        return p < 0 ? p + count : p
    }

    static func sequenceInsert(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        var seq = try ctx.sequence(0)
        let t = try ctx.input(1)
        let p = try position(ctx, 2, count: seq.count, insert: true) ?? seq.count
        seq.insert(.tensor(t), at: p)
        return [.sequence(seq)]
    }

    static func sequenceErase(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        var seq = try ctx.sequence(0)
        guard !seq.isEmpty else { throw ctx.fail("cannot erase from an empty sequence") }
        let p = try position(ctx, 1, count: seq.count, insert: false) ?? seq.count - 1
        seq.remove(at: p)
        return [.sequence(seq)]
    }

    static func sequenceAt(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let seq = try ctx.sequence(0)
        guard let p = try position(ctx, 1, count: seq.count, insert: false) else { throw ctx.fail("the position is missing") }
        return [seq[p]]
    }

    static func splitToSequence(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let x = try ctx.input(0)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let size = x.shape[axis]
        var pieces: [Tensor] = []
        if let split = ctx.optionalInput(1) {
            let v = split.int64s().map { Int($0) }
            var sizes: [Int]
            if split.rank == 0 {
                guard let c = v.first, c > 0 else { throw ctx.fail("the split size must be positive") }
                sizes = Array(repeating: c, count: size / c)
                if size % c != 0 { sizes.append(size % c) }
            } else {
                sizes = v
            }
            guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == size else {
                throw ctx.fail("split sizes \(sizes) do not add up to \(size)")
            }
            var start = 0
            for s in sizes {
                pieces.append(x.slice(axis: axis, start: start, length: s))
                start += s
            }
        } else {
            let keep = try ctx.int("keepdims", 1) != 0
            var squeezed = x.shape
            squeezed.remove(at: axis)
            for i in 0..<size {
                let p = x.slice(axis: axis, start: i, length: 1)
                if keep { pieces.append(p) } else {
                    guard let r = try? p.reshaped(to: squeezed) else { throw ctx.fail("cannot squeeze a piece") }
                    pieces.append(r)
                }
            }
        }
        return [.sequence(pieces.map { .tensor($0) })]
    }

    static func concatFromSequence(_ ctx: KernelContext) throws(RuntimeError) -> [GraphValue] {
        let seq = try ctx.sequence(0)
        var parts: [Tensor] = []
        for v in seq {
            guard let t = v.tensor else { throw ctx.fail("sequence elements must be tensors") }
            parts.append(t)
        }
        guard let first = parts.first else { throw ctx.fail("the sequence is empty") }
        let newAxis = try ctx.int("new_axis", 0) != 0
        let rank = first.rank + (newAxis ? 1 : 0)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: rank)
        for p in parts where p.dtype != first.dtype || p.rank != first.rank
            || (newAxis ? p.shape != first.shape : (0..<p.rank).contains { $0 != axis && p.shape[$0] != first.shape[$0] }) {
            throw ctx.fail("element shapes \(first.shape) and \(p.shape) cannot be joined on axis \(axis)")
        }
        guard let t = newAxis ? Tensor.stack(parts, axis: axis) : Tensor.concatenate(parts, axis: axis) else {
            throw ctx.fail("cannot join the sequence")
        }
        return [.tensor(t)]
    }
}

extension KernelContext {
    /// Input `i` as a sequence (an optional holding one counts).
    func sequence(_ i: Int) throws(RuntimeError) -> [GraphValue] {
        guard i < values.count, let v = values[i] else { throw fail("input \(i) is missing") }
        guard let s = v.sequence else { throw fail("input \(i) must be a sequence, got a \(v.kindName)") }
        return s
    }

    /// Runs the node's graph attribute `name` (If branch, Loop/Scan body) with `inputs` in order.
    func runSubgraph(_ name: String, _ inputs: [GraphValue], index: Int = 0) throws(RuntimeError) -> [GraphValue] {
        guard let runner = subgraphRunner else { throw fail("graph attribute '\(name)' is missing") }
        return try runner(name, index, inputs)
    }
}
