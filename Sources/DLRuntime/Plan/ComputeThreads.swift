import DLKernels

/// How many cores the runtime computes with: OpenBLAS's threads for one GEMM and the runtime's own
/// workers for the ops it splits over batch or channels. One number sets both, so the two never
/// oversubscribe the machine (OpenBLAS runs inside a GEMM call, the workers outside).
public enum ComputeThreads {
    /// Sets the process-wide thread count (at least 1; larger values are used as given).
    public static func set(_ count: Int) {
        let n = max(1, count)
        GEMM.setThreadCount(n)
        ParallelFor.setWorkerCount(n)
    }

    /// The current thread count.
    public static var count: Int { ParallelFor.workerCount }

    /// The OpenBLAS kernel family in use (`Haswell`, `SkylakeX`, ...).
    public static var blasCoreName: String { GEMM.backendCoreName }
}
