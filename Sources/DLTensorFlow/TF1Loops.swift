/// TF1 `tf.while_loop` frames (control flow v1) rewritten as the functional `While` TF2 writes,
/// which the importer translates to the IR's `Loop`.
///
/// A frame is the nodes between its `Enter`s and `Exit`s, named by the Enters' `frame_name`.
/// Each loop variable j is `Enter_j → Merge_j(Enter_j, NextIteration_j) → Switch_j(Merge_j,
/// LoopCond)`: `Switch_j:0` leaves through `Exit_j`, `Switch_j:1` is the body's view of the
/// variable, and `NextIteration_j`'s input its next value. `LoopCond`'s input is the condition,
/// computed from the Merges. Enters marked `is_constant` bring loop-invariant values in.
///
/// The rewrite makes a condition function (the Merges and invariants as arguments, the
/// condition as result) and a body function (the `Switch:1` values and invariants as arguments,
/// the NextIteration inputs and the invariants as results), a `While` node fed by the Enters'
/// inputs, and turns each Exit into an Identity of its While output. Loops nested in a loop,
/// and TF1 conds inside a loop, are refused naming the frame and the node.
enum TF1Loops {
    static let frameOps: Set<String> = ["Enter", "RefEnter", "Exit", "RefExit", "Merge", "RefMerge", "Switch", "RefSwitch",
                                        "NextIteration", "RefNextIteration", "LoopCond"]

    /// `node:0` and `node` are the same output.
    static func output(_ ref: String) -> (node: String, index: Int) {
        guard let colon = ref.lastIndex(of: ":"), let i = Int(ref[ref.index(after: colon)...]) else { return (ref, 0) }
        return (String(ref[..<colon]), i)
    }

    static func lift(_ parts: inout SavedModelParts, path: String) throws(TensorFlowError) {
        let enters = parts.nodes.filter { $0.op == "Enter" || $0.op == "RefEnter" }
        guard !enters.isEmpty else { return }
        var frames: [String: [TFNode]] = [:]
        var order: [String] = []
        for e in enters {
            let frame = e.string("frame_name") ?? ""
            if frames[frame] == nil { order.append(frame) }
            frames[frame, default: []].append(e)
        }
        var byName: [String: TFNode] = [:]
        for n in parts.nodes { byName[n.name] = n }
        // Users of each output, to follow the frame from its Enters.
        var users: [String: [TFNode]] = [:]
        for n in parts.nodes { for r in n.inputs { users[output(r).node, default: []].append(n) } }
        var replaced: [String: TFNode] = [:]
        var added: [TFNode] = []
        for (number, frame) in order.enumerated() {
            func fail(_ node: String, _ reason: String) -> TensorFlowError {
                .badNode(path: path, node: node, reason: "(TF1 while_loop frame '\(frame)') \(reason)")
            }
            let all = frames[frame] ?? []
            if let e = all.first(where: { $0.inputs.count != 1 }) { throw fail(e.name, "the Enter has \(e.inputs.count) inputs, not one") }
            let invariants = all.filter { $0.bool("is_constant") == true }
            let loopEnters = all.filter { $0.bool("is_constant") != true }
            guard let firstEnter = loopEnters.first else { throw fail(all.first?.name ?? frame, "has no loop variables") }
            var merges: [TFNode] = [], switches: [TFNode] = [], exits: [TFNode?] = [], nexts: [TFNode] = []
            var loopCond: String? = nil
            for e in loopEnters {
                guard let m = (users[e.name] ?? []).first(where: { $0.op == "Merge" || $0.op == "RefMerge" }), m.inputs.count == 2 else {
                    throw fail(e.name, "the Enter feeds no two-input Merge")
                }
                let other = m.inputs.map { output($0).node }.first { $0 != e.name } ?? ""
                guard let n = byName[other], n.op == "NextIteration" || n.op == "RefNextIteration", n.inputs.count == 1 else {
                    throw fail(m.name, "the Merge's second input is not a NextIteration")
                }
                guard let s = (users[m.name] ?? []).first(where: { ($0.op == "Switch" || $0.op == "RefSwitch") && $0.inputs.count == 2 && output($0.inputs[0]).node == m.name }) else {
                    throw fail(m.name, "the Merge feeds no Switch")
                }
                let c = output(s.inputs[1]).node
                guard byName[c]?.op == "LoopCond", loopCond == nil || loopCond == c else {
                    throw fail(s.name, "the Switch is not driven by the frame's one LoopCond")
                }
                loopCond = c
                let x = (users[s.name] ?? []).first { u in
                    (u.op == "Exit" || u.op == "RefExit") && u.inputs.count == 1 && output(u.inputs[0]) == (s.name, 0)
                }
                merges.append(m); switches.append(s); exits.append(x); nexts.append(n)
            }
            guard let condName = loopCond, let cond = byName[condName], cond.inputs.count == 1 else {
                throw fail(firstEnter.name, "has no LoopCond")
            }
            let vars = loopEnters.indices.map { "__v\($0)" }, consts = invariants.indices.map { "__c\($0)" }
            // Arguments: the condition reads the Merges, the body the Switches' second outputs;
            // both read the invariant Enters.
            var condArgs: [String: String] = [:], bodyArgs: [String: String] = [:]
            for (j, m) in merges.enumerated() { condArgs["\(m.name):0"] = vars[j] }
            for (j, s) in switches.enumerated() { bodyArgs["\(s.name):1"] = vars[j] }
            for (k, c) in invariants.enumerated() { condArgs["\(c.name):0"] = consts[k]; bodyArgs["\(c.name):0"] = consts[k] }
            func remapped(_ args: [String: String]) -> [TFNode] {
                parts.nodes.map { n in
                    var m = n
                    m.inputs = n.inputs.map { r in
                        let o = output(r)
                        return args["\(o.node):\(o.index)"] ?? r
                    }
                    return m
                }
            }
            // What each function reaches must be plain ops: a nested frame or a TF1 cond is refused.
            func checkReach(_ roots: [String], _ args: [String: String], _ what: String) throws(TensorFlowError) {
                var seen = Set<String>(), stack = roots
                while let r = stack.popLast() {
                    let o = output(r)
                    if args["\(o.node):\(o.index)"] != nil || !seen.insert(o.node).inserted { continue }
                    guard let n = byName[o.node] else { continue }
                    if frameOps.contains(n.op) {
                        throw fail(n.name, "its \(what) reaches \(n.op) '\(n.name)': loops nested in a loop and TF1 conds inside a loop are not translated")
                    }
                    stack += n.inputs
                }
            }
            try checkReach(cond.inputs, condArgs, "condition")
            try checkReach(nexts.map { $0.inputs[0] }, bodyArgs, "body")
            let condFn = TFFunction(name: "__tf1_loop\(number)_cond", inputArgs: vars + consts, outputArgs: ["pred"],
                                    nodes: remapped(condArgs), ret: ["pred": cond.inputs[0]])
            var ret: [String: String] = [:]
            for (j, n) in nexts.enumerated() { ret["r\(j)"] = n.inputs[0] }
            for (k, c) in consts.enumerated() { ret["r\(vars.count + k)"] = c }
            let bodyFn = TFFunction(name: "__tf1_loop\(number)_body", inputArgs: vars + consts,
                                    outputArgs: (0..<(vars.count + consts.count)).map { "r\($0)" }, nodes: remapped(bodyArgs), ret: ret)
            parts.functions[condFn.name] = condFn
            parts.functions[bodyFn.name] = bodyFn
            let whileName = "\(frame)/__tf1_while\(number)"
            added.append(TFNode(name: whileName, op: "While", inputs: (loopEnters + invariants).map { $0.inputs[0] },
                                attrs: ["cond": .fn(condFn.name), "body": .fn(bodyFn.name)]))
            for (j, x) in exits.enumerated() {
                guard let x else { continue }
                replaced[x.name] = TFNode(name: x.name, op: "Identity", inputs: ["\(whileName):\(j)"], attrs: x.attrs)
            }
        }
        parts.nodes = parts.nodes.map { replaced[$0.name] ?? $0 } + added
    }
}
