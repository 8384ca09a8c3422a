import COpenBLAS

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
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k),
            alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
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

    /// The number of threads OpenBLAS uses for one GEMM.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of threads OpenBLAS uses for one GEMM (process-wide). The runtime calls this
    /// once at start-up; a server running requests in parallel usually wants 1.
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
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
