import DLGraph
import DLKernels
import DLTensor

/// float32 kernels that run on the vectorised DLKernels loops, put in front of the general
/// kernels registered later for the same ops (which compute every dtype through Double arrays).
///
/// A fast path takes a node only when every input present is float32; anything else (other
/// dtypes, a bool condition) goes to the general kernel, so results for those stay as they were.
enum FastPaths {
    static var all: [(String, Kernel)] {
        let floatOnly: Set<String> = ["Relu", "Sigmoid", "Tanh", "Add", "Sub", "Mul", "Div"]
        return ElementwiseKernels.all.filter { floatOnly.contains($0.0) }
    }

    /// `fast` for all-float32 inputs, `general` otherwise.
    static func prefer(_ fast: @escaping Kernel, over general: @escaping Kernel) -> Kernel {
        { ctx throws(RuntimeError) in
            for t in ctx.inputs where t != nil && t?.dtype != .float32 { return try general(ctx) }
            return try fast(ctx)
        }
    }
}
