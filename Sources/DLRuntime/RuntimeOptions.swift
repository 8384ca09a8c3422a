import DLKernels

/// Every knob of the runtime as one value, handed to an `Executor` (and a `Model`): two models in
/// one process can run with different options, side by side. The library reads no environment
/// variable for these; the command-line tools map their `DLKIT_*` variables in with
/// ``init(environment:)``.
///
/// The defaults are what a user wants; the switches exist for before-and-after measurements
/// (`scripts/bench`) and for checking the portable paths on a machine that has the fast ones.
public struct RuntimeOptions: Sendable, Hashable {
    /// Workers each run's loops are cut for (GEMM columns, convolution rows, elementwise
    /// chunks); nil takes the process-wide count (`ComputeThreads.set`, `Model.setThreadCount`).
    /// Pool threads are started as needed; a count of 1 runs everything on the caller.
    public var threads: Int?
    /// Specialise the graph per input shape and reuse buffers (`ExecutionPlan`); off runs every
    /// node through the general executor.
    public var plans: Bool
    /// Run the graph passes (fusions, folding) before planning; off plans the graph as read.
    public var passes: Bool
    /// Pack constant weights once for the AVX-512 GEMM and convolution kernels.
    public var packing: Bool
    /// The fewest product rows (m) for which a Gemm/MatMul weight that is a view into a
    /// memory-mapped file is packed: the panels are a second copy of the file's bytes. Plans of
    /// fewer rows read the mapped weights where they are, with the packed kernel's sums in the
    /// packed kernel's order, so the bits are those of the same model from a file read into memory.
    public var packMappedMinRows: Int = RuntimeOptions.defaultPackMappedMinRows
    /// `Int.max`: mapped weights are never copied (an HF decoder: gpt2 runs in 50 MB of anonymous
    /// memory instead of 545, decoding at 0.95-1.1x the packed speed, a short prompt at about 0.8x:
    /// scripts/bench/RESULTS-hf.md). 0 packs them like any other weight.
    public static let defaultPackMappedMinRows = Int.max
    /// Winograd F(2×2, 3×3) for 3×3 convolutions with at least 16 channels (AVX-512 only).
    public var winograd: Bool
    /// Use the AVX-512 kernels where the CPU has them; off runs the portable Swift and OpenBLAS
    /// paths (what a CPU without AVX-512 runs).
    public var avx512: Bool
    /// Let elementwise steps write over an input that dies there, and steps whose output dies at
    /// a Concat write it into their slab of the Concat's output.
    public var inPlace: Bool
    /// Write each new plan's steps to stderr (a star marks steps that infer shapes per run).
    public var dumpPlans: Bool
    /// Write one line per pass run to stderr: node counts, passes applied, any rejected.
    public var dumpPasses: Bool
    /// Split thresholds of the kernels, for measurements.
    public var tuning: Tuning
    /// The most bytes one output may take when its size comes from input values (Range,
    /// ConstantOfShape): such outputs escape the plan's allocation check, so a hostile model or
    /// request could otherwise ask for any amount. Default 16 GiB, as `Graph.defaultAllocationBudget`.
    public var valueSizedOutputLimit: Int = 1 << 34

    public typealias Tuning = KernelOptions.Tuning

    public init(threads: Int? = nil, plans: Bool = true, passes: Bool = true, packing: Bool = true,
                winograd: Bool = true, avx512: Bool = true, inPlace: Bool = true,
                dumpPlans: Bool = false, dumpPasses: Bool = false, tuning: Tuning = Tuning()) {
        self.threads = threads.map { max(1, $0) }
        self.plans = plans
        self.passes = passes
        self.packing = packing
        self.winograd = winograd
        self.avx512 = avx512
        self.inPlace = inPlace
        self.dumpPlans = dumpPlans
        self.dumpPasses = dumpPasses
        self.tuning = tuning
    }

    /// The defaults.
    public static let `default` = RuntimeOptions()

    /// The options the tools' environment variables ask for, over the defaults:
    /// `DLKIT_NO_PLAN=1`, `DLKIT_NO_PASSES=1`, `DLKIT_PREPACK=0`, `DLKIT_WINOGRAD=0`,
    /// `DLKIT_AVX512=0`, `DLKIT_IN_PLACE=0`, `DLKIT_PLAN_DUMP=1`, `DLKIT_PASS_DUMP=1`, and the
    /// tuning `DLKIT_GEMM_SPLIT_MIN`, `DLKIT_GEMM_CHUNKS`, `DLKIT_PACKED_MAX_ROWS`,
    /// `DLKIT_PACKED_SPLIT_MIN`, `DLKIT_PACK_MAPPED_MIN_ROWS` (non-negative integers). For command-line tools; the library
    /// itself never reads the environment for these.
    public init(environment env: [String: String]) {
        self.init()
        if env["DLKIT_NO_PLAN"] != nil { plans = false }
        if env["DLKIT_NO_PASSES"] != nil { passes = false }
        if env["DLKIT_PREPACK"] == "0" { packing = false }
        if env["DLKIT_WINOGRAD"] == "0" { winograd = false }
        if env["DLKIT_AVX512"] == "0" { avx512 = false }
        if env["DLKIT_IN_PLACE"] == "0" { inPlace = false }
        if env["DLKIT_PLAN_DUMP"] != nil { dumpPlans = true }
        if env["DLKIT_PASS_DUMP"] != nil { dumpPasses = true }
        func int(_ name: String) -> Int? { env[name].flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil } }
        if let n = int("DLKIT_GEMM_SPLIT_MIN") { tuning.gemmSplitMin = n }
        if let n = int("DLKIT_GEMM_CHUNKS"), n >= 1 { tuning.chunksPerWorker = min(n, 16) }
        if let n = int("DLKIT_PACKED_MAX_ROWS") { tuning.packedMaxRows = n }
        if let n = int("DLKIT_PACKED_SPLIT_MIN") { tuning.packedSplitMin = n }
        if let n = int("DLKIT_PACK_MAPPED_MIN_ROWS") { packMappedMinRows = n }
    }

    /// What the kernels get of these options (per run, on the running thread).
    var kernelOptions: KernelOptions {
        KernelOptions(workers: threads, avx512: avx512, winograd: winograd, tuning: tuning, valueSizedOutputLimit: valueSizedOutputLimit)
    }
}
