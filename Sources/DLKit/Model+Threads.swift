import DLRuntime

extension Model {
    /// Sets how many cores inference uses, process-wide: OpenBLAS's GEMM threads and the runtime's
    /// own workers together, so they never oversubscribe the machine.
    public static func setThreadCount(_ count: Int) { ComputeThreads.set(count) }

    /// The thread count inference uses.
    public static var threadCount: Int { ComputeThreads.count }

    /// The OpenBLAS kernel family in use (`Haswell`, `SkylakeX`, ...), for benchmark records.
    public static var blasCoreName: String { ComputeThreads.blasCoreName }
}
