/// What a caller chooses for the kernels it runs: the worker count, the AVX-512 and Winograd
/// paths, and the split thresholds. Set for the length of a call with ``with(_:_:)``; every
/// kernel the calling thread runs sees it, and so do the pool threads while they run chunks of
/// that thread's loops. No other thread sees it: two models with different options can run at
/// once. The runtime sets it from its `RuntimeOptions` around every run.
public struct KernelOptions: Sendable, Hashable {
    /// Workers loops are cut for; nil takes the process default (`ParallelFor.setWorkerCount`).
    public var workers: Int?
    /// AVX-512 kernels where the CPU has them (``CPUFeatures/avx512Present``); false runs the
    /// portable Swift and OpenBLAS paths.
    public var avx512: Bool
    /// Winograd F(2×2, 3×3) for the 3×3 convolutions that qualify (AVX-512 only).
    public var winograd: Bool
    /// Tuning of the work splits, for measurements.
    public var tuning: Tuning
    /// The most bytes a kernel allocates for an output whose size comes from input values (Range,
    /// ConstantOfShape), which no plan can check beforehand: past it the kernel fails with an
    /// error instead of asking for the memory.
    public var valueSizedOutputLimit: Int

    /// Split thresholds. The defaults were measured on the 2-core bench machine (scripts/bench).
    public struct Tuning: Sendable, Hashable {
        /// OpenBLAS products (m·n·k) below this run as one call, not split over workers: about 4M
        /// multiply-adds, some 40 µs on one core. Smaller splits (the batch-1 MLP and transformer
        /// GEMMs) gained nothing even with both cores free and lost under load.
        public var gemmSplitMin: Int
        /// Chunks per worker when a GEMM is split: a worker the OS descheduled (the cores are
        /// shared) then holds back only a small piece, and the others take the rest.
        public var chunksPerWorker: Int
        /// Products of more rows than this take OpenBLAS, not the packed AVX-512 kernel: far past
        /// it, OpenBLAS's cache blocking of B is the safer bet.
        public var packedMaxRows: Int
        /// Packed products (m·n·k) below this run on one thread: about a million multiply-adds,
        /// some 10 µs on one core, against about a microsecond to start a spinning worker.
        public var packedSplitMin: Int

        public init(gemmSplitMin: Int = 1 << 22, chunksPerWorker: Int = 2, packedMaxRows: Int = 4096,
                    packedSplitMin: Int = 1 << 18) {
            self.gemmSplitMin = max(0, gemmSplitMin)
            self.chunksPerWorker = min(16, max(1, chunksPerWorker))
            self.packedMaxRows = max(0, packedMaxRows)
            self.packedSplitMin = max(0, packedSplitMin)
        }
    }

    public init(workers: Int? = nil, avx512: Bool = true, winograd: Bool = true, tuning: Tuning = Tuning(),
                valueSizedOutputLimit: Int = 1 << 34) {
        self.workers = workers.map { max(1, $0) }
        self.valueSizedOutputLimit = max(0, valueSizedOutputLimit)
        self.avx512 = avx512
        self.winograd = winograd
        self.tuning = tuning
    }

    /// The options in force on this thread (the defaults outside any ``with(_:_:)``).
    public static var current: KernelOptions { ThreadState.current.options }

    /// Runs `body` with `options` in force on this thread (and in the pool threads running
    /// chunks of its loops); the previous options come back afterwards. Starts pool threads up to
    /// `options.workers - 1` if fewer run (never stops any).
    public static func with<R, E: Error>(_ options: KernelOptions, _ body: () throws(E) -> R) throws(E) -> R {
        if let n = options.workers { ParallelFor.reserve(n) }
        let state = ThreadState.current
        let saved = state.options
        state.options = options
        defer { state.options = saved }
        return try body()
    }
}
