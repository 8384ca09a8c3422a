import DLTensor

/// Removes transposes, or moves them to where they cost nothing:
///
/// - `Transpose(Transpose(x, p1), p2)` becomes one `Transpose(x, p1∘p2)`, or `x` itself when the
///   two cancel; a Transpose with the identity permutation goes.
/// - `Gather(Transpose(x, p), i, axis)` gathers from `x` along `p[axis]` instead. With a scalar
///   index the transpose often disappears altogether (torch's `out[:, -1]` after a batch-first
///   transpose of an LSTM output: no copy of the whole sequence any more); with a vector index
///   the (smaller) gathered result is transposed.
/// - `Squeeze(Transpose(x, p), axes)` squeezes `x` first and transposes after, when that
///   transpose is then absorbed by one of the rewrites here.
/// - `Gemm` reading a 2-D `Transpose(x, [1, 0])` reads `x` and flips `transA`/`transB`; a `MatMul`
///   of such a transpose and a value known to be 2-D becomes a `Gemm` with the flag set.
/// - A binary elementwise op whose two operands are transposed by the same permutation runs on
///   the untransposed values, followed by one transpose, when that removes a transpose.
/// - A reduction that keeps its dimensions (ReduceMean and the rest) reduces the untransposed
///   value along the permuted axes, and its result is transposed.
/// - A Transpose is pushed down through elementwise ops (unary ones, binary ones and PRelu whose
///   other operand is a constant, laid out anew for the untransposed value) and through Pad of
///   constant pads (permuted alike) when the chain of such ops it heads ends in one of the
///   above (a binary op: its other operand transposed alike), so it can meet its partner there.
///   TensorFlow-sourced graphs put PRelu slopes and channel pads between channels-first
///   convolutions in channels-last form (MediaPipe's face models: a third of their run in such
///   transposes). It is not moved otherwise: a move alone saves nothing and could hide a
///   pattern another pass looks for.
///
/// Names of values other passes or callers see (graph outputs) are kept.
package enum SinkTransposes: GraphPass {
    public static let name = "sink-transposes"

    static let unary: Set<String> = [
        "Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Exp", "Log", "Sqrt", "Erf", "LeakyRelu", "Elu", "Selu",
        "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Reciprocal", "Ceil", "Floor", "Round", "Sign",
        "Sin", "Cos", "Not", "Celu", "Gelu", "Mish", "ThresholdedRelu", "Clip",
    ]
    static let binary: Set<String> = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]
    static let reductions: Set<String> = [
        "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    ]

    public static func run(_ graph: inout Graph) -> Bool {
        // A subgraph may read a value by closure: names are rewired below, so leave such graphs.
        guard graph.nodes.allSatisfy({ $0.subgraphs.isEmpty }) else { return false }
        var changed = false
        for _ in 0..<256 {
            guard rewriteOnce(&graph) else { break }
            changed = true
            _ = EliminateDeadNodes.removeDead(&graph)
        }
        return changed
    }

    static func perm(_ node: Node) -> [Int]? {
        guard OpSet.isDefaultDomain(node), node.opType == "Transpose", node.inputs.count == 1,
              node.outputs.count == 1, let p = (try? node.ints("perm")) ?? nil,
              Set(p) == Set(0..<p.count) else { return nil }
        return p
    }

    static func setPerm(_ node: inout Node, _ p: [Int]) {
        node.attributes.removeAll { $0.name == "perm" }
        node.attributes.append(Attribute(name: "perm", value: .ints(p)))
    }

    /// Applies the first rewrite found. - Returns: true when one was made.
    static func rewriteOnce(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let graphOutputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        var readersOf: [String: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
            for x in n.inputs where !x.isEmpty { readersOf[x, default: []].append(i) }
        }
        var taken = graph.definedNames
        func fresh(_ base: String) -> String {
            var k = 0
            while true {
                let n = "\(base)__sunk\(k)"
                if taken.insert(n).inserted { return n }
                k += 1
            }
        }
        /// The transpose feeding `name`, when there is one.
        func transposeOf(_ name: String) -> (index: Int, perm: [Int], source: String)? {
            guard let p = producer[name], let perm = perm(graph.nodes[p]) else { return nil }
            return (p, perm, graph.nodes[p].inputs[0])
        }
        /// Node i becomes `op` writing a fresh value, then the transpose at `index` (a copy of it,
        /// with `perm` when given) from that value to node i's outputs.
        func transposeBelow(_ op: Node, at i: Int, from index: Int, perm: [Int]? = nil, renamed: Bool = false) {
            var op = op
            let outputs = graph.nodes[i].outputs
            op.outputs = [fresh(outputs[0])]
            var tr = graph.nodes[index]
            if renamed { tr.name = fresh(graph.nodes[i].name) }
            tr.inputs = op.outputs
            tr.outputs = outputs
            if let perm { setPerm(&tr, perm) }
            graph.nodes.replaceSubrange(i...i, with: [op, tr])
        }
        let fed = Set(graph.inputs.map(\.name))
        /// A value's rank when known without running: initializers, Constants, else inferred
        /// (inference runs at most once per rewrite, and only when asked).
        var inferred: [String: TensorType]? = nil
        func rank(_ name: String) -> Int? {
            if let r = rankOf(name, graph) { return r }
            // Gemm and Flatten always give matrices, whatever inference knows of their inputs.
            if let p = producer[name], OpSet.isDefaultDomain(graph.nodes[p]) || graph.nodes[p].domain == FusedOps.domain,
               ["Gemm", "Flatten", "FusedGemm"].contains(graph.nodes[p].opType) { return 2 }
            if inferred == nil { inferred = (try? graph.inferTypes()) ?? [:] }
            return inferred?[name]?.rank
        }
        /// A constant of at most rank `r` (an initializer no input overrides), which broadcasts
        /// against the transposed value.
        func constant(_ name: String, rankAtMost r: Int) -> Tensor? {
            guard !fed.contains(name), let t = graph.initializers[name], t.rank <= r else { return nil }
            return t
        }
        /// Pad's constant pads for a value of rank `r`.
        func padsOf(_ node: Node, rank r: Int) -> [Int]? {
            graph.constantPads(of: node).flatMap { $0.count == 2 * r ? $0 : nil }
        }
        /// A reduction's axes (normalised, in attribute or input form) when it keeps the reduced
        /// dimensions and its axes are known without running; `[]` for all of them.
        func reducedAxes(_ node: Node, rank r: Int) -> [Int]? {
            guard node.outputs.count == 1, !node.outputs[0].isEmpty, (try? node.int("keepdims", default: 1)) == 1 else { return nil }
            let raw: [Int]
            if node.inputs.count >= 2, !node.inputs[1].isEmpty {
                guard !fed.contains(node.inputs[1]), let v = constantValue(node.inputs[1], graph).flatMap(SymVector.smallInts) else { return nil }
                raw = v
            } else if let a = (try? node.ints("axes")) ?? nil {
                raw = a
            } else {
                raw = []
            }
            return raw.isEmpty ? [] : Axes.normalise(raw, rank: r)
        }
        /// Whether a transpose by `p` reaching `node` through `input` is absorbed there: by another
        /// transpose, a Gather or Gemm that reads through it, or a binary op whose other operand
        /// is transposed alike and read only there (the rule for two transposed operands then
        /// removes that one: MediaPipe's channel-padded shortcut, Pad then Add to a convolution).
        func absorbs(_ node: Node, input: String, perm p: [Int]) -> Bool {
            guard OpSet.isDefaultDomain(node) else { return false }
            let r = p.count
            if binary.contains(node.opType), node.inputs.count == 2, node.inputs[0] != node.inputs[1] {
                let other = node.inputs[0] == input ? node.inputs[1] : node.inputs[0]
                return readers[other] == 1 && transposeOf(other)?.perm == p
            }
            if reductions.contains(node.opType) { return node.inputs.first == input && reducedAxes(node, rank: r) != nil }
            switch node.opType {
            case "Transpose": return true
            case "Gather": return node.inputs.first == input && node.inputs.count == 2 && rankOf(node.inputs[1], graph).map { $0 <= 1 } == true
            case "Gemm": return r == 2 && node.inputs.prefix(2).contains(input)
            default: return false
            }
        }
        /// Whether `node` is elementwise in the value it reads through `input` with a transpose of rank r.
        func passesThrough(_ node: Node, input: String, rank r: Int) -> Bool {
            guard OpSet.isDefaultDomain(node), node.outputs.count == 1, !node.outputs[0].isEmpty else { return false }
            if unary.contains(node.opType) || node.opType == "Cast" {
                // Clip's min/max are scalars; every other unary op has one input.
                return node.inputs.first == input && (node.opType == "Clip" || node.inputs.count == 1)
            }
            if binary.contains(node.opType) || node.opType == "PRelu", node.inputs.count == 2 {
                // PRelu's slope broadcasts one way only: the transposed value must be its input 0.
                if node.opType == "PRelu", node.inputs[0] != input { return false }
                let other = node.inputs[0] == input ? node.inputs[1] : node.inputs[0]
                return node.inputs[0] != node.inputs[1] && constant(other, rankAtMost: r) != nil
            }
            if node.opType == "Pad", node.inputs.first == input {
                return padsOf(node, rank: r) != nil
            }
            return false
        }
        /// `node` reading `x = Transpose(source, p)` through input `k`, rewritten to read `source`:
        /// a constant operand of more than one element and Pad's pads follow the permutation (a
        /// new initializer each; the old ones may have other readers). Nil when the constant cannot
        /// be laid out anew.
        func throughTranspose(_ node: Node, input k: Int, perm p: [Int], source: String) -> Node? {
            var op = node
            op.inputs[k] = source
            var inverse = [Int](repeating: 0, count: p.count)
            for (j, v) in p.enumerated() { inverse[v] = j }
            if node.opType == "Pad", let pads = padsOf(node, rank: p.count) {
                let r = p.count
                var moved = [Int64](repeating: 0, count: 2 * r)
                for j in 0..<r {
                    moved[p[j]] = Int64(pads[j])
                    moved[r + p[j]] = Int64(pads[r + j])
                }
                let name = fresh(node.inputs[1] + "_pads")
                graph.initializers[name] = Tensor(shape: [2 * r], scalars: moved)
                op.inputs[1] = name
            } else if node.inputs.count == 2, let c = constant(node.inputs[1 - k], rankAtMost: p.count), c.elementCount > 1 {
                // Aligned to the value's rank, then laid out as the untransposed value is.
                guard let aligned = try? c.reshaped(to: [Int](repeating: 1, count: p.count - c.rank) + c.shape),
                      let moved = try? aligned.transposed(inverse) else { return nil }
                let name = fresh(node.inputs[1 - k] + "_moved")
                graph.initializers[name] = moved
                op.inputs[1 - k] = name
            }
            return op
        }
        /// Follows elementwise ops from `value` while each value has one reader; true when a
        /// reader absorbs a transpose there. A value read by several nodes ends the walk: true when
        /// one of them absorbs it (the moved transpose then feeds all of them, as the one it
        /// replaces did, and cancels at that one: a PRelu read by the next block's convolution
        /// and by its residual Add).
        func chainEndsInAbsorber(_ value: String, perm p: [Int]) -> Bool {
            let r = p.count
            var v = value
            for _ in 0..<64 {
                guard !graphOutputs.contains(v), let rs = readersOf[v], !rs.isEmpty else { return false }
                if rs.contains(where: { absorbs(graph.nodes[$0], input: v, perm: p) }) { return true }
                guard rs.count == 1, readers[v] == 1, passesThrough(graph.nodes[rs[0]], input: v, rank: r) else { return false }
                v = graph.nodes[rs[0]].outputs[0]
            }
            return false
        }

        for (i, node) in graph.nodes.enumerated() where OpSet.isDefaultDomain(node) {
            switch node.opType {
            case "Transpose":
                guard let p2 = perm(node), let out = node.outputs.first else { continue }
                // Identity permutation.
                if p2 == Array(0..<p2.count), !graphOutputs.contains(out) {
                    replace(&graph, with: node.inputs[0], for: out, removing: i)
                    return true
                }
                guard let inner = transposeOf(node.inputs[0]), inner.perm.count == p2.count else { continue }
                let q = p2.map { inner.perm[$0] }
                if q == Array(0..<q.count) {
                    if graphOutputs.contains(out) {
                        graph.nodes[i] = Node(name: node.name, opType: "Identity", inputs: [inner.source], outputs: [out])
                    } else {
                        replace(&graph, with: inner.source, for: out, removing: i)
                    }
                } else {
                    var n = node
                    n.inputs = [inner.source]
                    setPerm(&n, q)
                    graph.nodes[i] = n
                }
                return true
            case "Gather":
                guard node.inputs.count == 2, let t = transposeOf(node.inputs[0]),
                      let a = try? node.int("axis", default: 0), let axis = Axes.normalise(a, rank: t.perm.count),
                      let idxRank = rankOf(node.inputs[1], graph) else { continue }
                let r = t.perm.count, src = t.perm[axis]
                var g = node
                g.inputs[0] = t.source
                g.attributes.removeAll { $0.name == "axis" }
                g.attributes.append(Attribute(name: "axis", value: .int(src)))
                if idxRank == 0 {
                    let q = (0..<r).filter { $0 != axis }.map { t.perm[$0] - (t.perm[$0] > src ? 1 : 0) }
                    if q == Array(0..<q.count) {
                        graph.nodes[i] = g
                        return true
                    }
                    guard readers[node.inputs[0]] == 1 else { continue }
                    transposeBelow(g, at: i, from: t.index, perm: q)
                    return true
                }
                guard idxRank == 1, readers[node.inputs[0]] == 1 else { continue }
                transposeBelow(g, at: i, from: t.index)
                return true
            case "Squeeze":
                // Squeeze(Transpose(x, p), axes) = Transpose(Squeeze(x, p[axes]), p without them),
                // made when the moved transpose is absorbed below (batch-first LSTM layers
                // imported from OpenVINO: Transpose, Squeeze, then the next layer's Transpose back).
                guard node.inputs.count == 2, node.outputs.count == 1, !node.outputs[0].isEmpty,
                      let t = transposeOf(node.inputs[0]), readers[node.inputs[0]] == 1, !fed.contains(node.inputs[1]),
                      let raw = constantValue(node.inputs[1], graph).flatMap(SymVector.smallInts), !raw.isEmpty,
                      let axes = Axes.normalise(raw, rank: t.perm.count) else { continue }
                let r = t.perm.count
                let sourceAxes = axes.map { t.perm[$0] }.sorted()
                let q = (0..<r).filter { !axes.contains($0) }.map { v in t.perm[v] - sourceAxes.filter { $0 < t.perm[v] }.count }
                guard chainEndsInAbsorber(node.outputs[0], perm: q) else { continue }
                var squeeze = node
                squeeze.inputs[0] = t.source
                if sourceAxes != axes {
                    let name = fresh(node.outputs[0] + "_axes")
                    let values: [Int64] = sourceAxes.map { Int64($0) }
                    graph.initializers[name] = Tensor(shape: [values.count], scalars: values)
                    squeeze.inputs[1] = name
                }
                transposeBelow(squeeze, at: i, from: t.index, perm: q)
                return true
            case "Gemm":
                for side in 0..<min(2, node.inputs.count) {
                    guard let t = transposeOf(node.inputs[side]), t.perm == [1, 0] else { continue }
                    let attr = side == 0 ? "transA" : "transB"
                    guard let flag = try? node.int(attr, default: 0) else { continue }
                    var n = node
                    n.inputs[side] = t.source
                    n.attributes.removeAll { $0.name == attr }
                    n.attributes.append(Attribute(name: attr, value: .int(flag == 0 ? 1 : 0)))
                    graph.nodes[i] = n
                    return true
                }
            case "MatMul":
                // A 2-D MatMul is a Gemm, which takes a transposed operand by its flag.
                guard node.inputs.count == 2, node.outputs.count == 1 else { continue }
                for side in 0..<2 {
                    guard let t = transposeOf(node.inputs[side]), t.perm == [1, 0],
                          rank(node.inputs[1 - side]) == 2 else { continue }
                    var inputs = node.inputs
                    inputs[side] = t.source
                    graph.nodes[i] = Node(name: node.name, opType: "Gemm", inputs: inputs, outputs: node.outputs,
                                          attributes: [Attribute(name: side == 0 ? "transA" : "transB", value: .int(1))],
                                          docString: node.docString)
                    return true
                }
            case _ where reductions.contains(node.opType):
                // A reduction keeping its dimensions commutes with a transpose: it reduces the
                // source along the permuted axes and the (smaller) result is transposed. Made when
                // the transpose is read only here, or when the result's transpose is absorbed
                // below (TFLite's squeeze-excite blocks: a channels-last mean over H and W between
                // channels-first convolutions).
                guard let t = transposeOf(node.input(0) ?? ""), let axes = reducedAxes(node, rank: t.perm.count),
                      readers[node.inputs[0]] == 1 || chainEndsInAbsorber(node.outputs[0], perm: t.perm) else { continue }
                var op = node
                op.inputs[0] = t.source
                let moved = axes.map { t.perm[$0] }.sorted()
                if moved != axes {
                    if node.inputs.count >= 2, !node.inputs[1].isEmpty {
                        let name = fresh(node.outputs[0] + "_axes")
                        graph.initializers[name] = Tensor(shape: [moved.count], scalars: moved.map { Int64($0) })
                        op.inputs[1] = name
                    } else {
                        op.attributes.removeAll { $0.name == "axes" }
                        op.attributes.append(Attribute(name: "axes", value: .ints(moved)))
                    }
                }
                transposeBelow(op, at: i, from: t.index, renamed: readers[node.inputs[0]] != 1)
                return true
            default:
                guard node.outputs.count == 1 else { continue }
                // Both operands of a binary elementwise op transposed alike (TensorFlow-sourced
                // graphs keep residual Adds channels last between channels-first convolutions):
                // one transpose after the op replaces them. Equal ranks broadcast axis by axis,
                // so the permutation commutes with the op. Made when it removes a transpose (one
                // operand's is read only here), or when both read the same one.
                if binary.contains(node.opType), node.inputs.count == 2, !node.outputs[0].isEmpty,
                   let t0 = transposeOf(node.inputs[0]), let t1 = transposeOf(node.inputs[1]), t0.perm == t1.perm,
                   readers[node.inputs[0]] == 1 || readers[node.inputs[1]] == 1 || node.inputs[0] == node.inputs[1] {
                    var op = node
                    op.inputs = [t0.source, t1.source]
                    transposeBelow(op, at: i, from: t0.index, renamed: true)
                    return true
                }
                // Push a transpose feeding this elementwise op below it, when that leads somewhere.
                for (k, x) in node.inputs.enumerated() where !x.isEmpty {
                    guard let t = transposeOf(x), readers[x] == 1, passesThrough(node, input: x, rank: t.perm.count),
                          chainEndsInAbsorber(node.outputs[0], perm: t.perm),
                          let op = throughTranspose(node, input: k, perm: t.perm, source: t.source) else { continue }
                    transposeBelow(op, at: i, from: t.index)
                    return true
                }
            }
        }
        return false
    }

    /// Readers of `old` read `new` instead; the node at `index` goes.
    static func replace(_ graph: inout Graph, with new: String, for old: String, removing index: Int) {
        graph.nodes.remove(at: index)
        for i in graph.nodes.indices {
            graph.nodes[i].inputs = graph.nodes[i].inputs.map { $0 == old ? new : $0 }
        }
    }

    /// The rank of a value known without running: an initializer's, or a Constant node's.
    static func rankOf(_ name: String, _ graph: Graph) -> Int? {
        constantValue(name, graph)?.rank
    }

    /// A value known without running: an initializer, or a Constant node's value.
    static func constantValue(_ name: String, _ graph: Graph) -> Tensor? {
        if let t = graph.initializers[name] { return t }
        for n in graph.nodes where n.outputs.first == name && n.opType == "Constant" {
            return try? ConstantOp.value(of: n)
        }
        return nil
    }
}
