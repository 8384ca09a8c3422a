import DLKernels

/// How many cores the runtime computes with: the runtime's persistent workers (`ParallelFor`),
/// which also split the columns of inference-size GEMMs. One number sets both the workers and
/// OpenBLAS, so the two never oversubscribe the machine: while the workers split GEMMs, OpenBLAS
/// runs single-threaded (its own threads would spin next to ours); with the split turned off
/// (`DLKIT_GEMM_SPLIT=0`) OpenBLAS gets the whole count and runs inside a GEMM call only.
public enum ComputeThreads {
    /// Sets the process-wide thread count (at least 1; larger values are used as given).
    public static func set(_ count: Int) {
        let n = max(1, count)
        GEMM.setThreadCount(GEMM.splitEnabled ? 1 : n)
        ParallelFor.setWorkerCount(n)
    }

    /// The process-wide thread count.
    public static var count: Int { ParallelFor.defaultWorkerCount }

    /// The OpenBLAS kernel family in use (`Haswell`, `SkylakeX`, ...).
    public static var blasCoreName: String { GEMM.backendCoreName }
}
