import DLKernels
import DLTensor

extension KernelContext {
    /// The broadcast of `shapes` (to `outShape` when given, else to their common shape) and the
    /// plan that walks it; an error naming this node when they do not broadcast.
    func broadcast(_ shapes: [[Int]], to outShape: [Int]? = nil) throws(RuntimeError) -> (shape: [Int], plan: BroadcastPlan) {
        do throws(Broadcast.Mismatch) {
            let shape: [Int]
            if let outShape { shape = outShape } else { shape = try Broadcast.shape(shapes) }
            return (shape, try BroadcastPlan(outShape: shape, operands: shapes))
        } catch {
            throw fail(error.description)
        }
    }

    /// `broadcast`, with each operand's flat index under every output element (for the general
    /// kernels that index element by element).
    func broadcastMaps(_ shapes: [[Int]], to outShape: [Int]? = nil) throws(RuntimeError) -> (shape: [Int], maps: [[Int]]) {
        let (shape, plan) = try broadcast(shapes, to: outShape)
        return (shape, shapes.indices.map { plan.offsets(of: $0) })
    }
}
