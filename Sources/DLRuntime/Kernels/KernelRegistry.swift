import DLGraph
import DLTensor

/// A kernel for the inputs it takes, nil for the rest: an op's fast variant, in front of its
/// general kernel.
typealias FastKernel = @Sendable (KernelContext) throws(RuntimeError) -> [Tensor]?

/// An op's kernel as the kernel lists and tables keep it. A struct, not a tuple: a closure kept
/// in a tuple or as a dictionary's value is stored in its most general form and taken out again
/// through a reabstraction thunk. A kernel had gathered a dozen of them between the plan and its
/// code, each copying the whole `KernelContext` (a fifth of a tiny op's step). A struct's
/// closure field keeps the closure's own form.
struct KernelEntry: Sendable {
    let op: String
    let run: Kernel

    init(_ op: String, _ run: @escaping Kernel) {
        (self.op, self.run) = (op, run)
    }
}

/// A fast variant as its lists give it: the op, what it takes (in words), its kernel.
struct FastEntry: Sendable {
    let op: String
    let takes: String
    let run: FastKernel

    init(_ op: String, _ takes: String, _ run: @escaping FastKernel) {
        (self.op, self.takes, self.run) = (op, takes, run)
    }
}

/// Op → kernel, one entry per op, built once (`OpKernels.table`).
///
/// Every op has one general kernel, which takes every input the op allows. An op may also have
/// one fast variant, listed as such with what it takes (usually float32 only, or a restricted
/// form of the op). The rule: the fast variant runs first; it returns nil for inputs outside what
/// it takes, and then the general kernel runs. A key added twice is refused, general or fast, so
/// no kernel is silently shadowed by a later one.
struct KernelRegistry {
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

    private(set) var general: [String: KernelEntry] = [:]
    private(set) var fast: [String: FastEntry] = [:]

    /// Adds the general kernel of each op in `entries`.
    mutating func add(_ entries: [KernelEntry]) throws(Problem) {
        for e in entries {
            guard general[e.op] == nil else { throw .duplicate(e.op) }
            general[e.op] = e
        }
    }

    /// Adds the fast variants in `entries`, each for its op.
    mutating func addFast(_ entries: [FastEntry]) throws(Problem) {
        for e in entries {
            guard fast[e.op] == nil else { throw .duplicateFast(e.op) }
            fast[e.op] = e
        }
    }

    /// The kernels to run: per op, the fast variant in front of the general kernel.
    func table() throws(Problem) -> [String: KernelEntry] {
        var t = general
        for (key, f) in fast {
            guard let g = general[key] else { throw .fastWithoutGeneral(key) }
            t[key] = KernelEntry(key, Self.kernel(f.run, inFrontOf: g.run))
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
