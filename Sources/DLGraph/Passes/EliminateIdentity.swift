/// Removes `Identity` nodes and inference-mode `Dropout` (no mask output read, no training flag):
/// their readers read the input instead.
///
/// A node whose output is a graph output is kept (the output name must stay), as is one whose
/// input comes from an enclosing scope or whose node has subgraphs reading the name.
package enum EliminateIdentity: GraphPass {
    public static let name = "eliminate-identity"

    public static func run(_ graph: inout Graph) -> Bool {
        let graphOutputs = Set(graph.outputs.map(\.name))
        var rename: [String: String] = [:]
        var keep: [Node] = []
        for node in graph.nodes {
            if removable(node), let x = node.input(0), let y = node.outputs.first, !y.isEmpty,
               !graphOutputs.contains(y) {
                rename[y] = rename[x] ?? x
                continue
            }
            keep.append(node)
        }
        guard !rename.isEmpty else { return false }
        // A subgraph reading a removed name by closure would no longer find it: keep those.
        for node in keep where !node.subgraphs.isEmpty {
            if !node.subgraphOuterNames.isDisjoint(with: rename.keys) { return false }
        }
        for i in keep.indices {
            keep[i].inputs = keep[i].inputs.map { rename[$0] ?? $0 }
        }
        graph.nodes = keep
        return true
    }

    static func removable(_ node: Node) -> Bool {
        guard OpSet.isDefaultDomain(node) else { return false }
        switch node.opType {
        case "Identity":
            return node.inputs.count == 1 && node.outputs.count == 1
        case "Dropout":
            // Inference mode: no training_mode input (or left out), no mask asked for.
            let noMask = node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty)
            let noTraining = node.inputs.count < 3 || node.inputs[2].isEmpty
            return noMask && noTraining && node.outputs.count >= 1
        default:
            return false
        }
    }
}
