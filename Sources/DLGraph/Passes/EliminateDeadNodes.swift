/// Removes nodes none of whose outputs is read (by a node, a subgraph or as a graph output),
/// walking backwards so whole dead chains go in one run: what constant folding and transpose
/// sinking leave behind (the Shape a folded Gather read, a Transpose nobody reads any more).
///
/// Random ops are kept (they advance a generator state a caller may observe through later runs'
/// results), as are nodes of other domains than ai.onnx and ai.dlkit, and nodes with subgraphs.
package enum EliminateDeadNodes: GraphPass {
    public static let name = "eliminate-dead-nodes"

    public static func run(_ graph: inout Graph) -> Bool { removeDead(&graph) }

    static let kept: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial",
    ]

    static func removeDead(_ graph: inout Graph) -> Bool {
        var readers = graph.readerCounts()
        var dead = Set<Int>()
        for i in graph.nodes.indices.reversed() {
            let n = graph.nodes[i]
            guard OpSet.isDefaultDomain(n) || n.domain == FusedOps.domain, n.subgraphs.isEmpty,
                  !kept.contains(n.opType), !n.outputs.isEmpty,
                  n.outputs.allSatisfy({ $0.isEmpty || readers[$0, default: 0] == 0 }) else { continue }
            dead.insert(i)
            for x in n.inputs where !x.isEmpty { readers[x, default: 1] -= 1 }
        }
        guard !dead.isEmpty else { return false }
        graph.nodes = graph.nodes.enumerated().filter { !dead.contains($0.offset) }.map(\.element)
        return true
    }
}
