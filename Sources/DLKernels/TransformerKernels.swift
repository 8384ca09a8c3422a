import CKernels

/// The AVX-512 attention core of `CKernels` (see `ckernels_transformer.h`): per head, score rows
/// `Q·Kᵀ` in a small per-thread scratch, scaled, masked and normalised there, then multiplied by
/// V into the output. Callers keep their portable path for when ``isAvailable`` is false or a
/// call returns false.
public enum AttentionCore {
    /// How the scale input applies to the products.
    public enum ScaleOp: Sendable { case none, multiply, divide }

    /// True when the AVX-512 kernels may run (see ``CPUFeatures/avx512``).
    public static var isAvailable: Bool { CPUFeatures.avx512 }

    /// Heads `heads` of `O = softmax(scale(Q·Kᵀ) + M)·V`. Element strides in floats:
    /// Q `s × d` at `q + h·qHead + i·qRow + c`; Kᵀ `d × t` at `kt + h·kHead + c·kRow + j`;
    /// V `t × dv` at `v + h·vHead + j·vRow + c`; mask `s × t` contiguous at `mask + h·maskHead`;
    /// O `s × dv` at `out + h·outHead + i·outRow + c`.
    /// - Returns: false when the kernel did not run (unsupported, sizes beyond `Int32`, or no
    ///   scratch memory); then nothing was written.
    public static func run(
        heads: Range<Int>, s: Int, t: Int, d: Int, dv: Int,
        q: UnsafePointer<Float>, qHead: Int, qRow: Int,
        kt: UnsafePointer<Float>, kHead: Int, kRow: Int,
        v: UnsafePointer<Float>, vHead: Int, vRow: Int,
        mask: UnsafePointer<Float>?, maskHead: Int, scaleOp: ScaleOp, scale: Float,
        out: UnsafeMutablePointer<Float>, outHead: Int, outRow: Int
    ) -> Bool {
        let limit = Int(Int32.max)
        guard isAvailable, heads.lowerBound >= 0, heads.upperBound <= limit, s <= limit, t <= limit, d <= limit,
              dv <= limit else { return false }
        let op: Int32
        switch scaleOp {
        case .none: op = Int32(DLK_SCALE_NONE)
        case .multiply: op = Int32(DLK_SCALE_MUL)
        case .divide: op = Int32(DLK_SCALE_DIV)
        }
        return dlk_attention(Int32(heads.lowerBound), Int32(heads.upperBound), Int32(s), Int32(t), Int32(d), Int32(dv),
                             q, qHead, qRow, kt, kHead, kRow, v, vHead, vRow, mask, maskHead, op, scale,
                             out, outHead, outRow) == 0
    }
}
