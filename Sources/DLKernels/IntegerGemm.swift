import CKernels

/// Exact products of 8-bit integer matrices with zero points, accumulated in 32-bit integers:
/// c[i][j] = Σ_k (a[i][k] − aZero[i]) · (b[k][j] − bZero[j]) (ONNX MatMulInteger, the sums
/// under TFLite's integer FULLY_CONNECTED and convolutions).
///
/// On AVX-512 VNNI (`vpdpbusd`: four unsigned × signed byte products added to each int32 lane)
/// the bytes are moved to what the instruction takes, a to unsigned (int8 + 128) and b to signed
/// (uint8 − 128), with the zero points moved alike, and the sums corrected by the row and column
/// sums: Σ (a − za)(b − zb) = Σ ab − zb·Σa − za·Σb + k·za·zb. Otherwise a scalar loop over the
/// centred values. Both are exact while every partial sum fits in int32 (`maxDepth`).
public enum IntegerGemm {
    /// The deepest product computed here: 255·255·k stays below 2^31.
    public static let maxDepth = 33_000

    /// An 8-bit matrix operand: `rows` × `cols` bytes row-major, signed (int8) or not (uint8),
    /// and its zero points (one, or one per row of a / per column of b).
    public struct Operand {
        public var bytes: UnsafeRawBufferPointer
        public var signed: Bool
        public var rows: Int
        public var cols: Int
        public var zeroPoints: [Int32]

        public init(bytes: UnsafeRawBufferPointer, signed: Bool, rows: Int, cols: Int, zeroPoints: [Int32]) {
            self.bytes = bytes
            self.signed = signed
            self.rows = rows
            self.cols = cols
            self.zeroPoints = zeroPoints
        }

        func value(_ i: Int) -> Int32 {
            signed ? Int32(Int8(bitPattern: bytes[i])) : Int32(bytes[i])
        }
    }

    /// Whether the VNNI kernel may run in this call (present, and AVX-512 allowed).
    public static var vnni: Bool { CPUFeatures.avx512 && dlk_avx512_vnni_available() != 0 }

    /// Whether this process may run the VNNI kernel at all (the CPU has it and `DLKIT_AVX512=0`
    /// did not turn AVX-512 off); a call may still have AVX-512 off (`vnni`).
    public static let vnniPresent: Bool = dlk_avx512_vnni_available() != 0

    /// c (a.rows × b.cols, row-major) = (a − aZero) · (b − bZero). The caller checks the shapes
    /// (a.cols == b.rows, byte counts, zero-point counts) and the depth (`maxDepth`).
    public static func multiply(_ a: Operand, _ b: Operand, into c: UnsafeMutablePointer<Int32>) {
        precondition(a.cols == b.rows && a.bytes.count >= a.rows * a.cols && b.bytes.count >= b.rows * b.cols && a.cols <= maxDepth,
                     "IntegerGemm.multiply: operands do not match")
        if vnni, a.rows > 0, b.cols > 0, a.cols > 0 { return vnniMultiply(a, b, into: c) }
        scalarMultiply(a, b, into: c)
    }

    static func zero(_ z: [Int32], _ i: Int) -> Int32 { z.isEmpty ? 0 : z.count == 1 ? z[0] : z[i] }

    /// The reference: centred values, int32 sums.
    static func scalarMultiply(_ a: Operand, _ b: Operand, into c: UnsafeMutablePointer<Int32>) {
        let m = a.rows, k = a.cols, n = b.cols
        var bc = [Int32](repeating: 0, count: k * n)
        for r in 0..<k { for j in 0..<n { bc[r * n + j] = b.value(r * n + j) - zero(b.zeroPoints, j) } }
        var row = [Int32](repeating: 0, count: n)
        for i in 0..<m {
            for j in 0..<n { row[j] = 0 }
            let za = zero(a.zeroPoints, i)
            for r in 0..<k {
                let av = a.value(i * k + r) - za
                if av == 0 { continue }
                for j in 0..<n { row[j] &+= av &* bc[r * n + j] }
            }
            for j in 0..<n { c[i * n + j] = row[j] }
        }
    }

    static func vnniMultiply(_ a: Operand, _ b: Operand, into c: UnsafeMutablePointer<Int32>) {
        guard let aBytes = a.bytes.baseAddress, let bBytes = b.bytes.baseAddress else { return scalarMultiply(a, b, into: c) }
        let m = a.rows, k = a.cols, n = b.cols
        let k4 = (k + 3) / 4, panel = Int(DLK_I8_PANEL)
        let panels = (n + panel - 1) / panel
        // a as unsigned bytes (int8 + 128), rows padded with zeros to a multiple of four.
        var ua = [UInt8](repeating: 0, count: m * k4 * 4)
        var rowSums = [Int64](repeating: 0, count: m)
        // b as signed bytes (uint8 − 128), packed in panels of 16 columns by groups of four k.
        var pb = [Int8](repeating: 0, count: panels * k4 * 64)
        var colSums = [Int64](repeating: 0, count: n)
        let aFlip: UInt8 = a.signed ? 0x80 : 0, bFlip: UInt8 = b.signed ? 0 : 0x80
        let panelStride = k4 * 64
        ua.withUnsafeMutableBufferPointer { ua in
            rowSums.withUnsafeMutableBufferPointer { rowSums in
                guard let uaBase = ua.baseAddress else { return }
                for i in 0..<m {
                    var s: Int64 = 0
                    let src = aBytes + i * k, dst = uaBase + i * k4 * 4
                    for r in 0..<k {
                        let v = src.load(fromByteOffset: r, as: UInt8.self) ^ aFlip
                        dst[r] = v
                        s += Int64(v)
                    }
                    rowSums[i] = s
                }
            }
        }
        pb.withUnsafeMutableBufferPointer { pb in
            colSums.withUnsafeMutableBufferPointer { colSums in
                guard let pbBase = pb.baseAddress else { return }
                for r in 0..<k {
                    let src = bBytes + r * n, rowBase = pbBase + (r / 4) * 64 + r % 4
                    for j in 0..<n {
                        let v = Int8(bitPattern: src.load(fromByteOffset: j, as: UInt8.self) ^ bFlip)
                        rowBase[(j / panel) * panelStride + (j % panel) * 4] = v
                        colSums[j] += Int64(v)
                    }
                }
            }
        }
        ua.withUnsafeBufferPointer { pa in
            pb.withUnsafeBufferPointer { pbp in
                dlk_gemm_u8s8(pa.baseAddress, k4 * 4, pbp.baseAddress, Int32(m), Int32(n), Int32(k4), c, n)
            }
        }
        // Zero points in the moved domains: a' = a + 128 (za' = za + 128), b' = b − 128 (zb' = zb − 128).
        let aShift: Int64 = a.signed ? 128 : 0, bShift: Int64 = b.signed ? 0 : -128
        let depth = Int64(k)
        let zb = (0..<n).map { Int64(zero(b.zeroPoints, $0)) + bShift }
        rowSums.withUnsafeBufferPointer { rowSums in
            colSums.withUnsafeBufferPointer { colSums in
                zb.withUnsafeBufferPointer { zb in
                    for i in 0..<m {
                        let za = Int64(zero(a.zeroPoints, i)) + aShift, rowSum = rowSums[i], out = c + i * n
                        for j in 0..<n {
                            let v = Int64(out[j]) - zb[j] * rowSum - za * colSums[j] + depth * za * zb[j]
                            out[j] = Int32(truncatingIfNeeded: v)
                        }
                    }
                }
            }
        }
    }
}
