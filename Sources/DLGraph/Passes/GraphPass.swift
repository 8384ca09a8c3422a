/// A rewrite of a graph that keeps what it computes (within float rounding).
public protocol GraphPass {
    /// A short name for logs and tests.
    static var name: String { get }
    /// Rewrites `graph` in place. - Returns: true when anything changed.
    static func run(_ graph: inout Graph) -> Bool
}

/// Runs passes to a fixed point for the runtime. Each pass's result is verified (every value
/// defined once, inputs defined, no cycle, outputs produced); a pass whose result fails the check
/// is dropped for that round, so a pass bug can never turn a good graph into a broken one.
public enum GraphOptimizer {
    /// The passes the runtime runs, in order.
    public static let standard: [any GraphPass.Type] = [EliminateIdentity.self, FuseMatMulAdd.self, FuseActivation.self,
                                                        FuseConvAdd.self, FoldBatchNorm.self]

    /// - Returns: the optimised graph, and the names of the passes that changed it (in order,
    ///   repeated when a pass fired in several rounds).
    public static func optimize(_ graph: Graph, passes: [any GraphPass.Type] = standard, maxRounds: Int = 8) -> (Graph, [String]) {
        var g = graph
        var applied: [String] = []
        for _ in 0..<maxRounds {
            var changed = false
            for pass in passes {
                var candidate = g
                guard pass.run(&candidate) else { continue }
                do { try candidate.verifyAndSort() } catch { continue }
                g = candidate
                applied.append(pass.name)
                changed = true
            }
            if !changed { break }
        }
        return (g, applied)
    }
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
}
