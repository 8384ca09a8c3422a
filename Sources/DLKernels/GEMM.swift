import CKernels
import COpenBLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Matrix multiplication on row-major float32 buffers, backed by OpenBLAS, plus the small helpers
/// callers compose it with (bias rows and columns).
///
/// Every function here trusts its arguments: the runtime checks shapes and buffer sizes before it
/// calls. A violated `precondition` is a bug in the caller, never a property of user data.
public enum GEMM {
    /// `C = alpha * op(A) * op(B) + beta * C`, row-major, where `op(X)` is `X` or its transpose.
    ///
    /// - Parameters:
    ///   - transA: when true, `a` holds `A` as a `k × m` matrix and `op(A) = Aᵀ`; else `m × k`.
    ///   - transB: when true, `b` holds `B` as an `n × k` matrix and `op(B) = Bᵀ`; else `k × n`.
    ///   - m, n, k: `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`. Any may be 0.
    ///   - lda, ldb, ldc: row strides (leading dimensions) in elements; each at least the stored
    ///     row length (`k` or `m` for `a`, `n` or `k` for `b`, `n` for `c`).
    ///   - beta: when 0, `c` is not read, so it may hold garbage (even NaN).
    /// - Precondition: sizes non-negative and within `Int32`; `c` does not overlap `a` or `b`.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "negative GEMM size")
        if m == 0 || n == 0 { return }
        if k == 0 {
            // alpha * A * B is an empty sum; BLAS would reject lda = 0 here, so do it directly.
            scale(c, rows: m, columns: n, ldc: ldc, by: beta)
            return
        }
        // Large products (training, big batches) split over the runtime's workers when OpenBLAS
        // is single-threaded beside them (see ComputeThreads). Each part packs all of the operand
        // it does not split: splitting C's columns repacks op(A) (m × k) per part, splitting its
        // rows repacks op(B) (k × n), so a product taller than wide splits its rows (an LSTM's
        // recurrent weight gradient, m = 4·hidden over n = hidden: the column split packed the
        // 1280-step gate gradients four times), a wider one its columns.
        if m * n * k >= 1 << 22, ParallelFor.canSplit, threadCount == 1 {
            if n >= 128, n >= m {
                sgemmSplittingColumns(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                      b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                return
            }
            if m >= 128 {
                sgemmSplittingRows(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                   b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                return
            }
        }
        blas(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
             b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// OpenBLAS runs single-threaded unless ``setThreadCount(_:)`` says otherwise: the runtime's
    /// workers are the parallelism (each splits a GEMM, a convolution or an LSTM batch and calls
    /// OpenBLAS on its part), so no kernel ever changes OpenBLAS's process-wide count per call.
    /// Applied once, before the first call into OpenBLAS.
    static let singleThreadedByDefault: Void = { openblas_set_num_threads(1) }()

    /// One OpenBLAS call (sizes checked by the caller, none zero).
    @inline(__always)
    static func blas(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreadedByDefault
        if m == 1 {
            // One row (a decoding step's products): a matrix-vector product reads B once where
            // sgemm packs it first (2.3-3x faster on gpt2's weights).
            if beta == 0 { c.update(repeating: 0, count: n) }
            cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans,
                        blasint(transB ? n : k), blasint(transB ? k : n), alpha, b, blasint(ldb),
                        a, blasint(transA ? lda : 1), beta, c, 1)
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k),
            alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    /// ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` with the columns of `C` (and
    /// of `op(B)`) split over the runtime's workers, OpenBLAS single-threaded meanwhile.
    ///
    /// For the small-`m` GEMMs of inference (a batch of rows times a weight matrix) OpenBLAS's own
    /// threading shares one packed `B` between threads and synchronises per panel, which costs
    /// more than it gains at these sizes; splitting `n` instead lets each worker pack only its own
    /// half of the weights and run without synchronisation. Falls back to one plain call when
    /// there is one worker, OpenBLAS is set to one thread (the caller already splits), the problem
    /// is small (``KernelOptions/Tuning/gemmSplitMin``), `n` is too narrow to split, or the call
    /// is nested in a split loop.
    ///
    /// Never changes OpenBLAS's thread count (process-wide state another thread's call would see):
    /// it splits only when OpenBLAS is single-threaded, which ``ComputeThreads`` sets once.
    public static func sgemmSplittingColumns(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        // A call from inside a split loop (per-image convolution) finds the pool taken and runs
        // its halves inline, one after the other: never a nested split.
        let workers = min(ParallelFor.workerCount, n / 64)
        let tuning = KernelOptions.current.tuning
        guard workers > 1, m > 0, k > 0, m * n * k >= tuning.gemmSplitMin, ParallelFor.canSplit,
              threadCount == 1 else {
            if m > 0, k > 0, n > 0 {
                blas(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
                return
            }
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        // Several chunks per worker: a worker the OS descheduled (the cores are shared) then holds
        // back only a small piece, and the others take the rest; each extra chunk repacks A
        // (small at inference sizes).
        inBlocks(of: n, parts: workers * tuning.chunksPerWorker) { j0, width in
            // op(B)'s column j is B's column j (k × n storage) or B's row j (n × k storage).
            blas(transA: transA, transB: transB, m: m, n: width, k: k, alpha: alpha, a: a, lda: lda,
                 b: transB ? b + j0 * ldb : b + j0, ldb: ldb, beta: beta, c: c + j0, ldc: ldc)
        }
    }

    /// ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` with the rows of `C` (and of
    /// `op(A)`) split over the runtime's workers in runs of 16, each part packing all of `B` (under
    /// 128 columns where ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` chooses
    /// this). The caller checked the split pays.
    package static func sgemmSplittingRows(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let workers = min(ParallelFor.workerCount, m / 64)
        inBlocks(of: m, parts: workers * KernelOptions.current.tuning.chunksPerWorker) { i0, rows in
            // op(A)'s row i is A's row i (m × k storage) or A's column i (k × m storage).
            blas(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha, a: transA ? a + i0 : a + i0 * lda, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c + i0 * ldc, ldc: ldc)
        }
    }

    /// `body(start, size)` on runs of whole 16-element blocks covering `0..<count` (the last may end
    /// short), `parts` of them split over the runtime's workers: a split product's edges stay
    /// vector-aligned.
    private static func inBlocks(of count: Int, parts: Int, _ body: (_ start: Int, _ size: Int) -> Void) {
        ParallelFor.split((count + 15) / 16, parts: parts) { lo, hi in
            let start = lo * 16, size = min(count, hi * 16) - start
            if size > 0 { body(start, size) }
        }
    }

    /// `c[i, j] += bias[j]` for a `rows × columns` matrix with row stride `ldc`: adds a row vector to
    /// every row (ONNX Gemm's `C` of shape `[N]`, a fully connected layer's bias).
    public static func addRowVector(
        _ bias: UnsafePointer<Float>, to c: UnsafeMutablePointer<Float>,
        rows: Int, columns: Int, ldc: Int
    ) {
        for i in 0..<rows {
            let row = c + i * ldc
            for j in 0..<columns { row[j] += bias[j] }
        }
    }

    /// `c[i, j] += bias[i]` for a `rows × columns` matrix with row stride `ldc`: adds one value per
    /// row (ONNX Gemm's `C` of shape `[M, 1]`, a convolution's per-channel bias).
    public static func addColumnVector(
        _ bias: UnsafePointer<Float>, to c: UnsafeMutablePointer<Float>,
        rows: Int, columns: Int, ldc: Int
    ) {
        for i in 0..<rows {
            let row = c + i * ldc
            let v = bias[i]
            for j in 0..<columns { row[j] += v }
        }
    }

    /// The OpenBLAS kernel family chosen for this CPU (`"Haswell"`, `"SkylakeX"`, ...), for logs.
    public static var backendCoreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// The OpenBLAS kernel family this CPU should get when the one OpenBLAS chose is older than
    /// the CPU (a distribution's OpenBLAS predates the CPU and falls back to its SSE3 `Prescott`
    /// kernels), or nil when its choice stands. Cores of the AVX2 generation or later are kept:
    /// OpenBLAS knew the CPU well enough, and an AMD core may be tuned better than a substitute.
    public static var preferredCoreType: String? {
        let chosen = backendCoreName.lowercased()
        let predatesAVX2 = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge",
                            "katmai", "coppermine", "northwood", "banias", "opteron", "barcelona", "bobcat",
                            "bulldozer", "piledriver", "steamroller", "excavator", "nano", "unknown"]
        guard predatesAVX2.contains(chosen) else { return nil }
        switch dlk_cpu_vector_level() {
        case 2: return "SkylakeX"
        case 1: return "Haswell"
        default: return nil
        }
    }

    /// The number of threads OpenBLAS uses for one GEMM (1 unless ``setThreadCount(_:)`` set more).
    public static var threadCount: Int {
        _ = singleThreadedByDefault
        return Int(openblas_get_num_threads())
    }

    /// Sets the number of threads OpenBLAS uses for one GEMM (process-wide). ``ComputeThreads``
    /// calls this once at start-up; no kernel changes it per call. With more than 1 the runtime's
    /// workers do not split GEMMs or convolutions (OpenBLAS threads inside each call instead).
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
        _ = singleThreadedByDefault
        openblas_set_num_threads(Int32(clamping: count))
    }

    @inline(__always)
    static func scale(_ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ldc: Int, by beta: Float) {
        for i in 0..<rows {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: columns)
            } else if beta != 1 {
                for j in 0..<columns { row[j] *= beta }
            }
        }
    }
}
