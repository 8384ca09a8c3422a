import DLKernels

/// The process-wide compute resources: the runtime's persistent workers (`ParallelFor`), which
/// also split the columns of inference-size GEMMs, and OpenBLAS. One number sets both, so they
/// never oversubscribe the machine: OpenBLAS runs single-threaded while the workers split GEMMs
/// and convolutions (its own threads would spin next to ours); with `openBLASThreads` it gets the
/// whole count instead and runs it inside each GEMM call, and the workers leave GEMMs whole.
///
/// A model's `RuntimeOptions.threads` chooses per model, per call; this is the default.
public enum ComputeThreads {
    /// Sets the process-wide thread count (at least 1; larger values are used as given).
    public static func set(_ count: Int, openBLASThreads: Bool = false) {
        let n = max(1, count)
        GEMM.setThreadCount(openBLASThreads ? n : 1)
        ParallelFor.setWorkerCount(n)
    }

    /// ``set(_:openBLASThreads:)`` with the process-wide settings of a tool's environment:
    /// `DLKIT_GEMM_SPLIT=0` gives OpenBLAS the threads, `DLKIT_SPIN_US` sets how long idle
    /// workers spin (see `ParallelFor.setSpin`). For command-line tools, at start-up.
    public static func set(_ count: Int, environment env: [String: String]) {
        if let us = env["DLKIT_SPIN_US"].flatMap({ Int($0) }), us >= 0 { ParallelFor.setSpin(microseconds: us) }
        set(count, openBLASThreads: env["DLKIT_GEMM_SPLIT"] == "0")
    }

    /// The process-wide thread count.
    public static var count: Int { ParallelFor.defaultWorkerCount }

    /// The OpenBLAS kernel family in use (`Haswell`, `SkylakeX`, ...).
    public static var blasCoreName: String { GEMM.backendCoreName }
}
