/// Replaces an `If` node whose condition is known by the nodes of the branch it would run.
///
/// An execution plan knows every shape of its inputs, so a condition computed from shapes (a
/// batch of one, a state of the expected size: silero-vad's three Ifs) is a constant of that
/// plan. Run as a step, the If pays for its subgraph's own plan on every run, and its outputs
/// have no types until then, so every node after it infers shapes per run. Inlined, the branch's
/// nodes are planned, fused and typed with the rest.
///
/// Not a pass of the optimizer: which branch runs depends on the values a plan knows, so the
/// runtime calls it while it plans.
package enum InlineBranch {
    /// `graph` with node `index` (an `If`) replaced by its `then_branch` (when `condition`) or
    /// `else_branch`: the branch's initializers join the graph's, its nodes take the If's place,
    /// and Identity nodes give its outputs the If's output names. Nil when the node is no If of
    /// those two branches, or when a name the branch defines is already used in `graph` (names are
    /// unique across nested scopes only where a subgraph can see them).
    public static func inlining(_ graph: Graph, nodeAt index: Int, condition: Bool) -> Graph? {
        guard graph.nodes.indices.contains(index) else { return nil }
        let node = graph.nodes[index]
        guard OpSet.isDefaultDomain(node), node.opType == "If",
              case .graph(let branch)? = node.attribute(condition ? "then_branch" : "else_branch"),
              branch.inputs.isEmpty, branch.outputs.count == node.outputs.count else { return nil }
        // Every name the graph uses outside this If's own branches.
        var used = graph.definedNames
        for (k, n) in graph.nodes.enumerated() {
            for i in n.inputs where !i.isEmpty { used.insert(i) }
            if k != index { for (_, g) in n.subgraphs { used.formUnion(g.definedNames) } }
        }
        guard used.isDisjoint(with: branch.definedNames) else { return nil }

        var out = graph
        for (name, t) in branch.initializers { out.initializers[name] = t }
        var replacement = branch.nodes
        for (name, o) in zip(node.outputs, branch.outputs) where !name.isEmpty {
            replacement.append(Node(name: "\(node.name)/\(name)", opType: "Identity", inputs: [o.name], outputs: [name]))
        }
        out.nodes.replaceSubrange(index...index, with: replacement)
        return out
    }
}
