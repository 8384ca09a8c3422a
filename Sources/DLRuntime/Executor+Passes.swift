#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph

extension Executor {
    /// `graph` after the runtime's passes (`GraphOptimizer.runtime`). With `dump` (``RuntimeOptions/dumpPasses``) one line
    /// goes to stderr: node counts before and after, rounds, the passes that changed the graph
    /// and any whose result failed verification (dropped, named here).
    static func optimized(_ graph: Graph, dump: Bool) -> Graph {
        let report = GraphOptimizer.optimizeReport(graph, passes: GraphOptimizer.runtime)
        if dump {
            var counts: [String: Int] = [:]
            for p in report.applied { counts[p, default: 0] += 1 }
            var text = "passes: \(graph.nodes.count) -> \(report.graph.nodes.count) nodes in \(report.rounds) rounds"
            text += report.reachedFixedPoint ? "" : " (round bound reached)"
            text += "; applied: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
            for r in report.rejected { text += "; rejected: \(r)" }
            text += "\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        return report.graph
    }
}
