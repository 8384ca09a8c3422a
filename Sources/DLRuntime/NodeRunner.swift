import DLGraph
import DLTensor

/// Runs one tensor-valued node on concrete inputs through the same kernel dispatch the `Executor`
/// uses (shape inference, then the op's kernel). For callers that walk a graph themselves, such as
/// the autograd tape, which keeps every intermediate value the executor would free.
public enum NodeRunner {
    /// True when the runtime has a tensor kernel for `node` (control flow and sequences excluded).
    public static func canRun(_ node: Node) -> Bool { OpKernels.kernel(for: node) != nil }

    /// Runs `node`; `inputs` follow `node.inputs` (nil where left out). Returns one tensor per output.
    /// - Throws: `RuntimeError` naming the node.
    public static func run(_ node: Node, inputs tensors: [Tensor?], opset: Int?) throws(RuntimeError) -> [Tensor] {
        guard let kernel = OpKernels.kernel(for: node) else { throw .invalidGraph(.unsupportedOps([node.opType: 1])) }
        var ctx = KernelContext(node: node, inputs: tensors, outputTypes: [])
        ctx.values = tensors.map { $0.map { GraphValue.tensor($0) } }
        ctx.opset = opset
        do {
            var typeMap: [String: TensorType] = [:]
            var valueMap: [String: Tensor] = [:]
            for (name, t) in zip(node.inputs, tensors) where !name.isEmpty {
                guard let t else { continue }
                typeMap[name] = TensorType(dtype: t.dtype, shape: t.shape)
                valueMap[name] = t
            }
            ctx.outputTypes = try Graph.inferNode(node, types: typeMap, values: valueMap)
        } catch { throw .node(node.displayName, error) }
        return try kernel(ctx)
    }
}
