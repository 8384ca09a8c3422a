import DLGraph

/// Import rules of the signal family.
enum SignalImport {
    /// DFT before opset 20 took `axis` as an attribute with default 1; from 20 it is an input
    /// with default -2. Old nodes that leave it out get the old default written down, so the
    /// kernel can apply the new one.
    static func normalise(_ graph: inout Graph, opset: Int) {
        guard opset < 20 else { return }
        for i in graph.nodes.indices where graph.nodes[i].opType == "DFT" && graph.nodes[i].attribute("axis") == nil
            && (graph.nodes[i].domain.isEmpty || graph.nodes[i].domain == "ai.onnx") {
            graph.nodes[i].attributes.append(Attribute(name: "axis", value: .int(1)))
        }
    }
}
