import DLKernels
import DLTensor

extension KernelContext {
    /// The broadcast of `shapes` (to `outShape` when given, else to their common shape) and, per
    /// operand, the flat index of its element under every output element, walked by
    /// `BroadcastPlan` (for the general kernels that index element by element); an error naming
    /// this node when they do not broadcast.
    func broadcastMaps(_ shapes: [[Int]], to outShape: [Int]? = nil) throws(RuntimeError) -> (shape: [Int], maps: [[Int]]) {
        do throws(Broadcast.Mismatch) {
            let shape: [Int]
            if let outShape { shape = outShape } else { shape = try Broadcast.shape(shapes) }
            let plan = try BroadcastPlan(outShape: shape, operands: shapes)
            return (shape, shapes.indices.map { plan.offsets(of: $0) })
        } catch {
            throw fail(error.description)
        }
    }
}
