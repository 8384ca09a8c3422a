import DLGraph
import DLTensor

/// A kernel for the inputs it takes, nil for the rest: an op's fast variant, in front of its
/// general kernel.
typealias FastKernel = @Sendable (KernelContext) throws(RuntimeError) -> [Tensor]?

/// Op → kernel, one entry per op, built once (`OpKernels.table`).
///
/// Every op has one general kernel, which takes every input the op allows. An op may also have
/// one fast variant, listed as such with what it takes (usually float32 only, or a restricted
/// form of the op). The rule: the fast variant runs first; it returns nil for inputs outside what
/// it takes, and then the general kernel runs. A key added twice is refused, general or fast, so
/// no kernel is silently shadowed by a later one.
struct KernelRegistry {
    /// A fast variant and, in words, what it takes.
    struct Fast {
        let takes: String
        let kernel: FastKernel
    }

    enum Problem: Error, CustomStringConvertible, Equatable {
        case duplicate(String)
        case duplicateFast(String)
        case fastWithoutGeneral(String)

        var description: String {
            switch self {
            case .duplicate(let k): "kernel registry: '\(k)' has two general kernels"
            case .duplicateFast(let k): "kernel registry: '\(k)' has two fast variants"
            case .fastWithoutGeneral(let k): "kernel registry: '\(k)' has a fast variant but no general kernel"
            }
        }
    }

    private(set) var general: [String: Kernel] = [:]
    private(set) var fast: [String: Fast] = [:]

    /// Adds the general kernel of each op in `entries`.
    mutating func add(_ entries: [(String, Kernel)]) throws(Problem) {
        for (key, kernel) in entries {
            guard general[key] == nil else { throw .duplicate(key) }
            general[key] = kernel
        }
    }

    /// Adds a fast variant for `key` that takes what `takes` says.
    mutating func addFast(_ key: String, takes: String, _ kernel: @escaping FastKernel) throws(Problem) {
        guard fast[key] == nil else { throw .duplicateFast(key) }
        fast[key] = Fast(takes: takes, kernel: kernel)
    }

    /// The kernels to run: per op, the fast variant in front of the general kernel.
    func table() throws(Problem) -> [String: Kernel] {
        var t = general
        for (key, f) in fast {
            guard let g = general[key] else { throw .fastWithoutGeneral(key) }
            t[key] = Self.kernel(f.kernel, inFrontOf: g)
        }
        return t
    }

    /// `fast`, and `general` where `fast` declines.
    static func kernel(_ fast: @escaping FastKernel, inFrontOf general: @escaping Kernel) -> Kernel {
        { ctx throws(RuntimeError) in
            let out: [Tensor]? = try fast(ctx)
            guard let out else { return try general(ctx) }
            return out
        }
    }
}
