import CKernels

/// What the CPU offers the C kernels of `CKernels`, read once at start.
public enum CPUFeatures {
    /// AVX-512 F/DQ/VL present, read once. `DLKIT_AVX512=0` in the environment at start masks it
    /// process-wide (the one variable the library reads itself, so a test process runs exactly
    /// what a CPU without AVX-512 runs); `KernelOptions.avx512` turns it off per call.
    public static let avx512Present: Bool = dlk_avx512_available() != 0

    /// The AVX-512 kernels may run in this call: present, and allowed by the kernel options in
    /// force. The packed GEMM, direct convolution and vector-math kernels run; otherwise the
    /// Swift and OpenBLAS paths do.
    public static var avx512: Bool { avx512Present && ThreadState.current.options.avx512 }
}
