import DLRuntime

extension Model {
    /// Sets how many cores inference uses by default, process-wide: the runtime's workers (with
    /// OpenBLAS single-threaded beside them, so they never oversubscribe the machine). A model's
    /// `RuntimeOptions.threads` overrides it for that model.
    public static func setThreadCount(_ count: Int) { ComputeThreads.set(count) }

    /// ``setThreadCount(_:)`` with the process-wide settings of a command-line tool's environment
    /// (`DLKIT_GEMM_SPLIT=0`: OpenBLAS gets the threads; `DLKIT_SPIN_US`).
    public static func setThreadCount(_ count: Int, environment: [String: String]) {
        ComputeThreads.set(count, environment: environment)
    }

    /// The thread count inference uses.
    public static var threadCount: Int { ComputeThreads.count }

    /// The OpenBLAS kernel family in use (`Haswell`, `SkylakeX`, ...), for benchmark records.
    public static var blasCoreName: String { ComputeThreads.blasCoreName }
}
