import DLTensor

/// A rewrite of a graph that keeps what it computes (within float rounding).
package protocol GraphPass {
    /// A short name for logs and tests.
    static var name: String { get }
    /// Rewrites `graph` in place. - Returns: true when anything changed.
    static func run(_ graph: inout Graph) -> Bool
}

/// Runs passes to a fixed point for the runtime (at most `maxRounds` rounds over the list). Each
/// pass's result is verified (every value defined once, inputs defined, no cycle, outputs
/// produced, and types still inferable when they were before); a pass whose result fails the
/// check is dropped for that round, so a pass bug can never turn a good graph into a broken one.
/// `optimizeReport` says which pass failed and how; `optimizeStrict` throws it (for tests).
package enum GraphOptimizer {
    /// The passes the runtime runs, in order, with `folding` as the constant-folding pass: the
    /// runtime's `KernelFolding` (`GraphOptimizer.runtime`) evaluates nodes through the kernels.
    /// `lookup`, when given, runs `FuseQuantizedLookup` with an evaluator (the runtime's
    /// `KernelLookupTables`).
    public static func standard(folding: any GraphPass.Type, lookup: (any GraphPass.Type)? = nil) -> [any GraphPass.Type] {
        [EliminateIdentity.self, FoldConvBias.self, FoldPadIntoConv.self, FuseHardSwish.self,
         FuseConvIntegerNHWC.self, FuseQLinearConv.self, FuseRequantize.self, FuseQuantizeDequantize.self]
        + (lookup.map { [$0] } ?? [])
        + [FoldOneHotMatMul.self, FuseMatMulAdd.self, FuseActivation.self,
         FuseAttention.self,
         FuseConvAdd.self,
         FuseConvPool.self,
         FoldBatchNorm.self,
         folding,
         EliminateCommonSubexpressions.self,
         SinkTransposes.self]
    }

    /// The standard passes with `ConstantFolding` on its own (`Constant` nodes and symbolic
    /// shapes; no evaluation, which needs the kernels): what DLGraph can run by itself.
    public static let standard = standard(folding: ConstantFolding.self)

    /// - Returns: the optimised graph, and the names of the passes that changed it (in order,
    ///   repeated when a pass fired in several rounds).
    public static func optimize(_ graph: Graph, passes: [any GraphPass.Type] = standard, maxRounds: Int = 8) -> (Graph, [String]) {
        let report = optimizeReport(graph, passes: passes, maxRounds: maxRounds)
        return (report.graph, report.applied)
    }

    /// What `optimizeReport` did.
    public struct Report: Sendable {
        public var graph: Graph
        /// Names of the passes that changed the graph, in order (repeated per round).
        public var applied: [String]
        /// Passes whose result failed verification (and was dropped), with why.
        public var rejected: [PassVerificationError]
        /// Rounds run; `maxRounds` with `reachedFixedPoint` false means the bound stopped it.
        public var rounds: Int
        public var reachedFixedPoint: Bool
    }

    /// `optimize`, also reporting rejected passes and whether a fixed point was reached.
    public static func optimizeReport(_ graph: Graph, passes: [any GraphPass.Type] = standard, maxRounds: Int = 8) -> Report {
        var g = graph
        var report = Report(graph: graph, applied: [], rejected: [], rounds: 0, reachedFixedPoint: false)
        // Types are checked after each pass only when the input graph infers cleanly.
        let checkTypes = (try? graph.inferTypes()) != nil
        for _ in 0..<maxRounds {
            report.rounds += 1
            var changed = false
            for pass in passes {
                var candidate = g
                guard pass.run(&candidate) else { continue }
                do throws(GraphError) {
                    try candidate.verifyAndSort()
                    if checkTypes { _ = try candidate.inferTypes() }
                } catch {
                    report.rejected.append(PassVerificationError(pass: pass.name, error: error))
                    continue
                }
                g = candidate
                report.applied.append(pass.name)
                changed = true
            }
            if !changed {
                report.reachedFixedPoint = true
                break
            }
        }
        report.graph = g
        return report
    }

    /// `optimize` that throws on the first pass whose result fails verification.
    public static func optimizeStrict(_ graph: Graph, passes: [any GraphPass.Type] = standard, maxRounds: Int = 8)
        throws(PassVerificationError) -> (Graph, [String])
    {
        let report = optimizeReport(graph, passes: passes, maxRounds: maxRounds)
        if let first = report.rejected.first { throw first }
        return (report.graph, report.applied)
    }
}

/// A pass turned a verified graph into one that does not verify.
package struct PassVerificationError: Error, CustomStringConvertible, Sendable {
    public var pass: String
    public var error: GraphError

    public var description: String { "graph pass '\(pass)' produced an invalid graph: \(error)" }
}

extension Graph {
    /// How many nodes read each value (a node reading a value twice counts twice), plus one for
    /// each graph output naming it.
    func readerCounts() -> [String: Int] {
        var c: [String: Int] = [:]
        for n in nodes {
            for i in n.inputs where !i.isEmpty { c[i, default: 0] += 1 }
            for name in n.subgraphOuterNames { c[name, default: 0] += 1 }
        }
        for o in outputs { c[o.name, default: 0] += 1 }
        return c
    }

    /// The nodes reading each value, each node once (a node whose subgraph reads the value from
    /// outside counts as its reader).
    func readerNodes() -> [String: [Int]] {
        var r: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for v in Set(n.inputs.filter { !$0.isEmpty } + n.subgraphOuterNames) { r[v, default: []].append(i) }
        }
        return r
    }

    /// The node index producing each value.
    func producers() -> [String: Int] {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        return producer
    }

    /// The initializer `name` when no run can override it (it is not also a graph input), of
    /// `dtype` when one is given: what a pass may treat as a constant.
    func constantInitializer(_ name: String, dtype: DType? = nil) -> Tensor? {
        guard !name.isEmpty, !inputs.contains(where: { $0.name == name }), let t = initializers[name],
              dtype.map({ t.dtype == $0 }) ?? true else { return nil }
        return t
    }

    /// A `Pad` node's pads when they are constant and it has no `axes` input: 2·rank values,
    /// the begins then the ends.
    func constantPads(of pad: Node) -> [Int]? {
        guard pad.opType == "Pad", pad.inputs.count >= 2, pad.inputs.count < 4 || pad.inputs[3].isEmpty,
              let t = constantInitializer(pad.inputs[1]), let v = SymVector.smallInts(t), v.count % 2 == 0 else { return nil }
        return v
    }

    /// `base`, or `base` with a number after it, whichever no initializer, node output or graph
    /// input is named yet: a name for an initializer a pass adds.
    func unusedName(_ base: String) -> String {
        let taken = Set(nodes.flatMap(\.outputs)).union(inputs.map(\.name))
        var name = base, k = 1
        while initializers.contains(name) || taken.contains(name) {
            name = base + "\(k)"
            k += 1
        }
        return name
    }

    /// Replaces the nodes at the keys of `replaced`, then drops the nodes at `removed` (offsets
    /// into the node list before the call): how a fusion pass applies what it matched.
    mutating func rewrite(replacing replaced: [Int: Node] = [:], removing removed: Set<Int>) {
        for (i, node) in replaced { nodes[i] = node }
        if !removed.isEmpty { nodes = nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element) }
    }
}
