import DLGraph
import DLTensor

/// Import rules of the softmax family (Softmax, LogSoftmax, Hardmax).
enum SoftmaxImport {
    static let ops: Set<String> = ["Softmax", "LogSoftmax", "Hardmax"]

    /// Before opset 13 these ops flattened the input to 2-D at `axis` (default 1) and normalised
    /// each row. The IR op normalises along one axis, so a legacy node becomes
    /// Flatten(axis) → op(axis 1) → Reshape back to the input's shape (a constant shape when it is
    /// known statically, a Shape node otherwise). When `axis` is the last one nothing changes but
    /// the attribute.
    static func rewriteLegacy(_ graph: inout Graph) {
        guard graph.nodes.contains(where: { ops.contains($0.opType) && ($0.domain.isEmpty || $0.domain == "ai.onnx") }) else { return }
        let types = (try? graph.inferTypes()) ?? [:]
        var nodes: [Node] = []
        // Node names are taken too: two nodes of one name make the written model invalid for
        // onnx.checker and ONNX Runtime.
        var taken = Set(graph.nodes.flatMap { $0.inputs + $0.outputs + [$0.name] }).union(graph.initializers.names)
        // A Flatten's output is 2-D whatever inference knows (inference stops at runtime-shaped
        // ops), so a graph read a second time (from a checkpoint or our own ONNX) is not
        // rewritten again.
        let flattened = Set(graph.nodes.filter { $0.opType == "Flatten" && ($0.domain.isEmpty || $0.domain == "ai.onnx") }
            .compactMap(\.outputs.first))
        func fresh(_ base: String) -> String {
            var name = base, k = 0
            while taken.contains(name) { k += 1; name = "\(base)_\(k)" }
            taken.insert(name)
            return name
        }
        for node in graph.nodes {
            guard ops.contains(node.opType), node.domain.isEmpty || node.domain == "ai.onnx",
                  let x = node.inputs.first, let y = node.outputs.first else {
                nodes.append(node)
                continue
            }
            let axis = (try? node.int("axis", default: 1)) ?? 1
            var rest = node
            rest.attributes.removeAll { $0.name == "axis" }
            let dims = types[x]?.dims
            if let r = dims?.count ?? (flattened.contains(x) ? 2 : nil), let a = Axes.normalise(axis, rank: r), a == r - 1 {
                rest.attributes.append(Attribute(name: "axis", value: .int(r - 1)))
                nodes.append(rest)
                continue
            }
            let base = node.name.isEmpty ? y : node.name
            let flat = fresh(base + "_flat"), normalised = fresh(base + "_2d")
            nodes.append(Node(name: fresh(base + "_flatten"), opType: "Flatten", inputs: [x], outputs: [flat],
                              attributes: [Attribute(name: "axis", value: .int(axis))]))
            rest.inputs[0] = flat
            rest.outputs = [normalised]
            rest.attributes.append(Attribute(name: "axis", value: .int(1)))
            nodes.append(rest)
            let shapeName = fresh(base + "_shape")
            if let concrete = dims?.concrete {
                graph.initializers[shapeName] = Tensor(shape: [concrete.count], scalars: concrete.map { Int64($0) })
            } else {
                nodes.append(Node(name: shapeName, opType: "Shape", inputs: [x], outputs: [shapeName]))
            }
            nodes.append(Node(name: fresh(base + "_reshape"), opType: "Reshape", inputs: [normalised, shapeName], outputs: [y]))
        }
        graph.nodes = nodes
    }
}
