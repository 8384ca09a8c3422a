import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A constant matrix (weights) rearranged once for the AVX-512 kernels of `CKernels`, so a run
/// never repacks it (OpenBLAS packs its `B` operand again on every call, which at inference
/// sizes costs as much as a fifth of the product).
///
/// Two arrangements:
/// - ``panels(_:k:n:ldb:transposed:)``: the `B` operand of ``PackedGEMM/multiply(m:a:lda:transA:b:c:ldc:epilogue:)``
///   (a Gemm or MatMul weight), 32-column panels.
/// - ``rowBlocks(_:m:k:)``: the weights of a stride-1 convolution (`[outChannels, inChannels·kh·kw]`
///   for one group), for ``Convolution/conv2DDirect(_:input:weights:bias:residual:output:activation:)``.
///
/// Immutable once made; shared by the plans of one executor and by concurrent runs.
public final class PackedMatrix: @unchecked Sendable {
    public enum Arrangement: Sendable, Equatable { case panels, rowBlocks }

    public let arrangement: Arrangement
    /// `panels`: B is `rows × columns` (k × n). `rowBlocks`: A is `rows × columns` (m × k).
    public let rows: Int
    public let columns: Int
    let storage: UnsafeMutablePointer<Float>
    let count: Int

    private init?(arrangement: Arrangement, rows: Int, columns: Int, count: Int) {
        guard count > 0, let p = aligned(count) else { return nil }
        self.arrangement = arrangement
        self.rows = rows
        self.columns = columns
        self.storage = p
        self.count = count
    }

    deinit { free(storage) }

    /// True when the packed kernels can run in this call (``CPUFeatures/avx512``). Without them
    /// no matrix is packed and callers keep their OpenBLAS paths.
    public static var isSupported: Bool { CPUFeatures.avx512 }

    /// The `k × n` matrix B (`b` row-major with row stride `ldb`; with `transposed`, `b` holds Bᵀ,
    /// `n × k`) in panels; nil when the kernels are unsupported or the sizes leave `Int32`.
    public static func panels(_ b: UnsafePointer<Float>, k: Int, n: Int, ldb: Int, transposed: Bool) -> PackedMatrix? {
        guard isSupported, k > 0, n > 0, k <= Int(Int32.max), n <= Int(Int32.max) else { return nil }
        let count = Int(dlk_packed_b_count(Int32(k), Int32(n)))
        guard count >= k * n, let m = PackedMatrix(arrangement: .panels, rows: k, columns: n, count: count) else { return nil }
        dlk_pack_b(Int32(k), Int32(n), b, ldb, transposed ? 1 : 0, m.storage)
        return m
    }

    /// The `m × k` matrix A (`a` row-major, row stride `k`) in the row blocks of the convolution
    /// kernel; nil when the kernels are unsupported or the sizes leave `Int32`.
    public static func rowBlocks(_ a: UnsafePointer<Float>, m: Int, k: Int) -> PackedMatrix? {
        guard isSupported, m > 0, k > 0, m <= Int(Int32.max), k <= Int(Int32.max) else { return nil }
        let (count, overflow) = m.multipliedReportingOverflow(by: k)
        guard !overflow, let p = PackedMatrix(arrangement: .rowBlocks, rows: m, columns: k, count: count) else { return nil }
        dlk_pack_a(Int32(m), Int32(k), a, p.storage)
        return p
    }
}

/// 64-byte aligned floats (nil when the allocation fails); released with `free`.
private func aligned(_ count: Int) -> UnsafeMutablePointer<Float>? {
    var raw: UnsafeMutableRawPointer? = nil
    let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
    guard !overflow, posix_memalign(&raw, 64, bytes) == 0, let raw else { return nil }
    return raw.bindMemory(to: Float.self, capacity: count)
}

/// What the packed kernels do to each product element before storing it, in this order:
/// `v = alpha·(A·B)`; `v += cScale·C` when `accumulate` (C is what the output held);
/// `v += rowBias[i] + columnBias[j]`; then the activation (a PRelu's slopes per row,
/// `rowSlope[i]`, or per column, `columnSlope[j]`: where the output channels lie).
public struct GEMMEpilogue {
    public var alpha: Float = 1
    public var accumulate = false
    public var cScale: Float = 1
    public var rowBias: UnsafePointer<Float>? = nil
    public var columnBias: UnsafePointer<Float>? = nil
    public var activation: Activation = .none
    public var rowSlope: UnsafePointer<Float>? = nil
    public var columnSlope: UnsafePointer<Float>? = nil

    public init(alpha: Float = 1, accumulate: Bool = false, cScale: Float = 1, rowBias: UnsafePointer<Float>? = nil,
                columnBias: UnsafePointer<Float>? = nil, activation: Activation = .none,
                rowSlope: UnsafePointer<Float>? = nil, columnSlope: UnsafePointer<Float>? = nil) {
        self.alpha = alpha
        self.accumulate = accumulate
        self.cScale = cScale
        self.rowBias = rowBias
        self.columnBias = columnBias
        self.activation = activation
        self.rowSlope = rowSlope
        self.columnSlope = columnSlope
    }

    /// The C form, with the column bias moved to the first column of a call that starts at
    /// column `column0` and the row bias to row `row0`.
    func c(row0: Int = 0, column0: Int = 0) -> dlk_epilogue {
        var e = dlk_epilogue()
        e.alpha = alpha
        e.c_scale = cScale
        e.accumulate = accumulate ? 1 : 0
        e.row_bias = rowBias.map { $0 + row0 }
        e.col_bias = columnBias.map { $0 + column0 }
        (e.activation, e.act_a, e.act_b) = activation.cForm
        e.row_slope = rowSlope.map { $0 + row0 }
        e.col_slope = columnSlope.map { $0 + column0 }
        return e
    }
}

/// Products with a packed `B` (see ``PackedMatrix``) on the AVX-512 micro-kernel, split over the
/// runtime's workers by column panels (or by rows when there are few panels).
public enum PackedGEMM {
    /// `C (m × n, row stride ldc) = epilogue(A·B)` with `b` packed as panels (`k × n`); `a` is
    /// `m × k` with row stride `lda`, or with `transA` `k × m`.
    /// - Returns: false when the kernel could not run (its scratch memory could not be had);
    ///   then `c` is untouched and the caller uses OpenBLAS.
    /// - Precondition: `b.arrangement == .panels`; sizes within `Int32`.
    @discardableResult
    public static func multiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool, b: PackedMatrix,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue
    ) -> Bool {
        precondition(b.arrangement == .panels && m >= 0 && m <= Int(Int32.max), "bad packed GEMM call")
        let k = b.rows
        return split(m: m, n: b.columns, k: k, a: a, lda: lda, transA: transA, c: c, ldc: ldc, epilogue: epilogue) { rows, cols, ai, ci, e in
            dlk_sgemm_packed(Int32(rows), Int32(cols.count), Int32(k), ai, lda, transA ? 1 : 0, b.storage + cols.lowerBound * k, ci, ldc, &e)
        }
    }

    /// ``multiply(m:a:lda:transA:b:c:ldc:epilogue:)`` for B's columns `columns` only (C's columns
    /// `columns`, the epilogue's column bias read there too), on the calling thread: a slice of a
    /// product that the caller splits over workers itself. The slice starts at a panel (a
    /// multiple of 32); each element gets the bits the whole product gives it.
    /// - Returns: false when it did not run (a slice not at a panel, past B, no scratch).
    public static func multiply(
        m: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool, b: PackedMatrix, columns: Range<Int>,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue
    ) -> Bool {
        guard b.arrangement == .panels, columns.lowerBound >= 0, columns.lowerBound % 32 == 0, columns.upperBound <= b.columns,
              m >= 0, m <= Int(Int32.max) else { return false }
        guard m > 0, !columns.isEmpty else { return true }
        var e = epilogue.c(column0: columns.lowerBound)
        return dlk_sgemm_packed(Int32(m), Int32(columns.count), Int32(b.rows), a, lda, transA ? 1 : 0,
                                b.storage + columns.lowerBound * b.rows, c + columns.lowerBound, ldc, &e) == 0
    }

    /// ``multiply(m:a:lda:transA:b:c:ldc:epilogue:)`` with `b` not packed, read where it is: a
    /// weight that must not be copied (a view into a mapped file). The same split over the
    /// workers and, but for one case, the same micro-kernel and sum order, so every element gets
    /// the bits the packed panels of this B give:
    /// - `k × n` row-major with row stride `ldb` (`dlk_sgemm_b_rows`: rows of B loaded in place;
    ///   one or two rows of A stream B row by row);
    /// - with `transposedB`, Bᵀ (`n × k`, a fully connected layer's weights; `dlk_sgemm_bt_rows`:
    ///   16 × 16 blocks transposed in registers as they are needed). The one case: one or two
    ///   rows of A take each output as a dot product of two rows read in order, in the order of
    ///   sums `dlk_sgemm_bt_rows` documents. Transposing for the panels' order took three times
    ///   as long as reading the weight (a 784 × 512 layer: 0.075 against 0.024 ms), so the
    ///   runtime gives such products this path for packed weights too
    ///   (`LinearKernels.panels`): mapped and owned weights still give the same bits.
    /// - Returns: false when the kernel could not run (no AVX-512, sizes past `Int32`, no
    ///   scratch); then the caller uses OpenBLAS, which rewrites every element.
    public static func multiplyUnpacked(
        m: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool,
        b: UnsafePointer<Float>, k: Int, n: Int, ldb: Int, transposedB: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue
    ) -> Bool {
        guard PackedMatrix.isSupported, m > 0, k > 0, n > 0, m <= Int(Int32.max), k <= Int(Int32.max), n <= Int(Int32.max),
              ldb >= (transposedB ? k : n) else { return false }
        return split(m: m, n: n, k: k, a: a, lda: lda, transA: transA, c: c, ldc: ldc, epilogue: epilogue) { rows, cols, ai, ci, e in
            transposedB
                ? dlk_sgemm_bt_rows(Int32(rows), Int32(cols.count), Int32(k), ai, lda, transA ? 1 : 0, b + cols.lowerBound * ldb, ldb, ci, ldc, &e)
                : dlk_sgemm_b_rows(Int32(rows), Int32(cols.count), Int32(k), ai, lda, transA ? 1 : 0, b + cols.lowerBound, ldb, ci, ldc, &e)
        }
    }

    /// The split of an `m × n` product (sum of `k`) over the runtime's workers: by column panels
    /// when rows are few, under 8 row blocks (96 rows) per worker (every part packs all of A, a
    /// small cost then, and reads only its panels of B: a 128-token encoder pass at 2 threads ran
    /// 17.2 -> 15.8 ms on packed weights, 19.6 -> 16.8 on mapped ones, whose panels each part
    /// transposes), by rows when there are many (a batch-32 sequence, 2048 rows, split by panels
    /// packed its whole A once per part).
    /// `part(rows, columns, A at the part's first row, C at its first element, epilogue moved
    /// there)` runs the C kernel on one part and returns its status (0: ran).
    /// - Returns: false when a part failed (it wrote nothing, but others did; the caller then
    ///   recomputes everything).
    private static func split(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue,
        part: (Int, Range<Int>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, inout dlk_epilogue) -> Int32
    ) -> Bool {
        guard m > 0 else { return true }
        let panels = (n + 31) / 32
        let rowBlocks = (m + 11) / 12
        let workers = ParallelFor.workerCount
        let tuning = KernelOptions.current.tuning
        guard workers > 1, m * n * k >= tuning.packedSplitMin, ParallelFor.canSplit, max(panels, rowBlocks) > 1 else {
            var e = epilogue.c()
            return part(m, 0..<n, a, c, &e) == 0
        }
        // One flag per chunk start, so no two chunks write the same memory.
        let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(panels, rowBlocks))
        failed.initialize(repeating: false)
        defer { failed.deallocate() }
        if rowBlocks < 8 * workers && (panels >= rowBlocks || panels >= 2 * workers) {
            ParallelFor.split(panels, parts: min(panels, workers * tuning.chunksPerWorker)) { lo, hi in
                let j0 = lo * 32
                var e = epilogue.c(column0: j0)
                if part(m, j0..<min(n, hi * 32), a, c + j0, &e) != 0 { failed[lo] = true }
            }
        } else {
            ParallelFor.split(rowBlocks, parts: min(rowBlocks, workers * tuning.chunksPerWorker)) { lo, hi in
                let i0 = lo * 12
                var e = epilogue.c(row0: i0)
                if part(min(m, hi * 12) - i0, 0..<n, transA ? a + i0 : a + i0 * lda, c + i0 * ldc, &e) != 0 { failed[lo] = true }
            }
        }
        return !failed.contains(true)
    }

    /// True when a product of `m` rows should take the packed path. With A packed by register
    /// transposes (it was packed by scatters), the packed path beats OpenBLAS on batched
    /// sequences too: a batch-32 transformer layer (2048 × 384 × 128, 2048 × 512 × 128,
    /// 2048 × 128 × 512 products) ran 10.7-11.4 ms (min) against 12.0-12.5 ms with OpenBLAS,
    /// which repacks B on every call and adds bias and ReLU in separate passes. Still capped:
    /// far past this, OpenBLAS's cache blocking of B is the safer bet.
    /// ``KernelOptions/Tuning/packedMaxRows`` (default 4096).
    public static func prefers(rows m: Int) -> Bool { m <= KernelOptions.current.tuning.packedMaxRows }
}
