import DLKernels
import Testing

struct GEMMCase: Sendable, CustomTestStringConvertible {
    var m: Int, n: Int, k: Int
    var transA = false, transB = false
    var alpha: Float = 1, beta: Float = 0
    /// Extra elements at the end of each stored row (leading dimension larger than the row).
    var ldPad = 0

    var testDescription: String {
        "m\(m) n\(n) k\(k) tA\(transA) tB\(transB) α\(alpha) β\(beta) pad\(ldPad)"
    }
}

@Suite struct GEMMTests {
    static let cases: [GEMMCase] = [
        GEMMCase(m: 1, n: 1, k: 1),
        GEMMCase(m: 3, n: 5, k: 7),
        GEMMCase(m: 17, n: 9, k: 33, transA: true),
        GEMMCase(m: 8, n: 13, k: 5, transB: true),
        GEMMCase(m: 6, n: 4, k: 11, transA: true, transB: true, alpha: 0.5, beta: -1.5),
        GEMMCase(m: 5, n: 7, k: 3, alpha: 2, beta: 1, ldPad: 3),
        GEMMCase(m: 64, n: 70, k: 100, transB: true, beta: 0.25, ldPad: 1),
        GEMMCase(m: 4, n: 3, k: 0, beta: 0.5),
        GEMMCase(m: 4, n: 3, k: 0, beta: 0),
        // One row: the matrix-vector path, every transposition, strides, both betas.
        GEMMCase(m: 1, n: 19, k: 37, ldPad: 2),
        GEMMCase(m: 1, n: 19, k: 37, transA: true, ldPad: 2),
        GEMMCase(m: 1, n: 19, k: 37, transB: true, alpha: 0.5, beta: 1.5, ldPad: 1),
        GEMMCase(m: 1, n: 19, k: 37, transA: true, transB: true, beta: -2, ldPad: 3),
    ]

    @Test(arguments: cases)
    func sgemmMatchesDirectLoops(_ c: GEMMCase) {
        let (rowsA, colsA) = c.transA ? (c.k, c.m) : (c.m, c.k)
        let (rowsB, colsB) = c.transB ? (c.n, c.k) : (c.k, c.n)
        let lda = colsA + c.ldPad, ldb = colsB + c.ldPad, ldc = c.n + c.ldPad
        let a = dyadicFloats(max(1, rowsA * lda), seed: 1)
        let b = dyadicFloats(max(1, rowsB * ldb), seed: 2)
        var out = dyadicFloats(c.m * ldc, seed: 3)
        var expected = out
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s: Float = 0
                for p in 0..<c.k {
                    let av = c.transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = c.transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += av * bv
                }
                expected[i * ldc + j] = c.alpha * s + (c.beta == 0 ? 0 : c.beta * out[i * ldc + j])
            }
        }
        out.withUnsafeMutableBufferPointer { o in
            GEMM.sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k,
                       alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: c.beta, c: o.baseAddress!, ldc: ldc)
        }
        expectClose(out, expected)
    }

    @Test func sgemmWithZeroBetaIgnoresGarbageInOutput() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: .nan, count: 4)
        c.withUnsafeMutableBufferPointer { o in
            GEMM.sgemm(transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, a: a, lda: 2,
                       b: b, ldb: 2, beta: 0, c: o.baseAddress!, ldc: 2)
        }
        #expect(c == [19, 22, 43, 50])
        var row = [Float](repeating: .nan, count: 2)
        row.withUnsafeMutableBufferPointer { o in
            GEMM.sgemm(transA: false, transB: false, m: 1, n: 2, k: 2, alpha: 1, a: a, lda: 2,
                       b: b, ldb: 2, beta: 0, c: o.baseAddress!, ldc: 2)
        }
        #expect(row == [19, 22])
    }

    @Test func addRowVectorAddsBiasToEveryRowWithinTheStride() {
        var c: [Float] = [1, 2, 3, -1, 4, 5, 6, -1]
        let bias: [Float] = [10, 20, 30]
        c.withUnsafeMutableBufferPointer { GEMM.addRowVector(bias, to: $0.baseAddress!, rows: 2, columns: 3, ldc: 4) }
        #expect(c == [11, 22, 33, -1, 14, 25, 36, -1])
    }

    @Test func addColumnVectorAddsOneValuePerRow() {
        var c: [Float] = [1, 2, 3, 4, 5, 6]
        let bias: [Float] = [10, 20]
        c.withUnsafeMutableBufferPointer { GEMM.addColumnVector(bias, to: $0.baseAddress!, rows: 2, columns: 3, ldc: 3) }
        #expect(c == [11, 12, 13, 24, 25, 26])
    }

    static let splitCases: [GEMMCase] = [
        GEMMCase(m: 32, n: 200, k: 100),
        GEMMCase(m: 32, n: 200, k: 100, transB: true, alpha: 0.5, beta: 1, ldPad: 3),
        GEMMCase(m: 20, n: 130, k: 120, transA: true, transB: true, beta: -2),
        GEMMCase(m: 3, n: 100, k: 9),  // too small: the plain path
    ]

    /// Tall and narrow: the rows split.
    static let rowSplitCases: [GEMMCase] = [
        GEMMCase(m: 200, n: 32, k: 100),
        GEMMCase(m: 203, n: 10, k: 100, transA: true, alpha: 0.5, beta: 1, ldPad: 3),
        GEMMCase(m: 130, n: 20, k: 120, transA: true, transB: true, beta: -2),
    ]

    /// The column split over two workers gives what one OpenBLAS call gives, edges included, and
    /// never touches OpenBLAS's thread count.
    @Test(arguments: splitCases)
    func sgemmSplittingColumnsMatchesOneCall(_ c: GEMMCase) {
        Self.splitMatchesOneCall(c, GEMM.sgemmSplittingColumns)
    }

    /// So does the row split.
    @Test(arguments: rowSplitCases)
    func sgemmSplittingRowsMatchesOneCall(_ c: GEMMCase) {
        Self.splitMatchesOneCall(c, GEMM.sgemmSplittingRows)
    }

    static func splitMatchesOneCall(
        _ c: GEMMCase,
        _ split: (Bool, Bool, Int, Int, Int, Float, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>, Int) -> Void
    ) {
        let (rowsA, colsA) = c.transA ? (c.k, c.m) : (c.m, c.k)
        let (rowsB, colsB) = c.transB ? (c.n, c.k) : (c.k, c.n)
        let lda = colsA + c.ldPad, ldb = colsB + c.ldPad, ldc = c.n + c.ldPad
        let a = dyadicFloats(rowsA * lda, seed: 4)
        let b = dyadicFloats(rowsB * ldb, seed: 5)
        var parts = dyadicFloats(c.m * ldc, seed: 6)
        var whole = parts
        let blas = GEMM.threadCount
        ParallelFor.withWorkerCount(2) {
            parts.withUnsafeMutableBufferPointer { o in
                split(c.transA, c.transB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.beta, o.baseAddress!, ldc)
            }
        }
        whole.withUnsafeMutableBufferPointer { o in
            GEMM.sgemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k,
                       alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: c.beta, c: o.baseAddress!, ldc: ldc)
        }
        expectClose(parts, whole)
        #expect(GEMM.threadCount == blas)
    }

    @Test func backendReportsACoreNameAndThreadCount() {
        #expect(!GEMM.backendCoreName.isEmpty)
        #expect(GEMM.threadCount >= 1)
    }
}
