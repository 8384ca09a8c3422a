@testable import DLKernels
import Testing

/// IntegerGemm against Σ (a − za)(b − zb) in Int64, for every signedness of the two operands,
/// zero points one or per row/column, and sizes off the kernel's blocks (rows not a multiple of
/// four, depth not of four, columns not of 16): with AVX-512 allowed (VNNI where the CPU has it)
/// and with it off (the scalar loop).
@Suite struct IntegerGemmTests {
    static func reference(_ a: [UInt8], _ aSigned: Bool, _ za: [Int32], _ b: [UInt8], _ bSigned: Bool, _ zb: [Int32], m: Int, k: Int, n: Int) -> [Int32] {
        func v(_ x: UInt8, _ signed: Bool) -> Int64 { signed ? Int64(Int8(bitPattern: x)) : Int64(x) }
        var c = [Int32](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Int64 = 0
                for r in 0..<k {
                    s += (v(a[i * k + r], aSigned) - Int64(za.count == 1 ? za[0] : za[i])) * (v(b[r * n + j], bSigned) - Int64(zb.count == 1 ? zb[0] : zb[j]))
                }
                c[i * n + j] = Int32(s)
            }
        }
        return c
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matchesTheReference(aSigned: Bool, bSigned: Bool) {
        var rng = SystemRandomNumberGenerator()
        for (m, k, n) in [(1, 1, 1), (5, 7, 19), (9, 64, 33), (4, 300, 16), (3, 3, 50)] {
            let a = (0..<(m * k)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let b = (0..<(k * n)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            func zp(_ count: Int, _ signed: Bool) -> [Int32] { (0..<count).map { _ in signed ? Int32.random(in: -128...127) : Int32.random(in: 0...255) } }
            for (za, zb) in [(zp(1, aSigned), zp(1, bSigned)), (zp(m, aSigned), zp(n, bSigned)), ([Int32(aSigned ? -128 : 255)], [Int32(bSigned ? 127 : 0)])] {
                let want = Self.reference(a, aSigned, za, b, bSigned, zb, m: m, k: k, n: n)
                for avx512 in [true, false] {
                    var c = [Int32](repeating: 0, count: m * n)
                    KernelOptions.with(KernelOptions(avx512: avx512)) {
                        a.withUnsafeBytes { pa in
                            b.withUnsafeBytes { pb in
                                c.withUnsafeMutableBufferPointer { pc in
                                    IntegerGemm.multiply(.init(bytes: pa, signed: aSigned, rows: m, cols: k, zeroPoints: za),
                                                         .init(bytes: pb, signed: bSigned, rows: k, cols: n, zeroPoints: zb), into: pc.baseAddress!)
                                }
                            }
                        }
                    }
                    #expect(c == want, "m \(m) k \(k) n \(n) avx512 \(avx512) (VNNI \(IntegerGemm.vnni)): \(c.prefix(4)) vs \(want.prefix(4))")
                }
            }
        }
    }

    /// The byte transposes around the integer convolutions (channels first to last and back): whole
    /// 16 × 16 blocks, edges of each size, a few rows (an RGB image), two matrices in a row.
    @Test(arguments: [(16, 16), (33, 50), (3, 100), (100, 3), (64, 48), (1, 17)])
    func byteTransposesPutEachByteWhereItBelongs(rows: Int, cols: Int) {
        let count = 2, n = rows * cols
        let src: [UInt8] = (0..<(count * n)).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i &* 131 &+ (i >> 8)) }
        var dst = [UInt8](repeating: 0, count: count * n)
        src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { d in
            IntegerConvolution.transposeBytes(s.baseAddress!, count: count, rows: rows, cols: cols, into: d.baseAddress!)
        } }
        var wrong: [Int] = []
        for m in 0..<count {
            for i in 0..<rows {
                for j in 0..<cols where wrong.isEmpty && dst[m * n + j * rows + i] != src[m * n + i * cols + j] { wrong = [m, i, j] }
            }
        }
        #expect(wrong.isEmpty, "first misplaced byte (matrix, row, column): \(wrong)")
    }
}
