import CKernels

/// What the CPU offers the C kernels of `CKernels`, read once at start.
public enum CPUFeatures {
    /// AVX-512 F/DQ/VL present and allowed (`DLKIT_AVX512=0` in the environment says no): the
    /// packed GEMM, direct convolution and vector-math kernels run; otherwise the Swift and
    /// OpenBLAS paths do.
    public static let avx512: Bool = dlk_avx512_available() != 0
}
