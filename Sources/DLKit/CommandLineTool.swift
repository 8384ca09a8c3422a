#if canImport(Glibc)
import Glibc
#endif
import DLKernels
import Foundation

/// What every DLKit command-line tool does first, before its own arguments.
public enum CommandLineTool {
    /// - Gives OpenBLAS the kernels this CPU should have (``chooseBLASCore()``).
    /// - Sets up Keras reading in a child process (`KerasIsolation.setUpForCommandLine()`).
    public static func setUp() {
        chooseBLASCore()
        KerasIsolation.setUpForCommandLine()
    }

    /// For a tool whose every step allocates afresh (`dltrain`): freed memory stays in the heap
    /// for the next step (`Heap.keepFreedMemory()` of DLKernels) rather than going back to the
    /// kernel and coming back as new pages, faulted in and zeroed (150 CNN training steps at 2
    /// threads: 93,618 -> 13,048 page faults). Nothing happens when the user set glibc's own
    /// tunables (`GLIBC_TUNABLES`).
    public static func keepFreedMemory() {
        guard ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] == nil else { return }
        Heap.keepFreedMemory()
    }

    /// When OpenBLAS chose kernels older than the CPU (Debian's 0.3.21 does not know recent
    /// Xeons and runs its SSE3 `Prescott` kernels on them), runs this executable again with
    /// `OPENBLAS_CORETYPE` naming the right family: OpenBLAS reads the variable only while it
    /// loads, before `main`. Nothing happens when `OPENBLAS_CORETYPE` is already set (by the user,
    /// or by this function in the first process) or `DLKIT_BLAS_CORE=keep`; nor outside Linux.
    public static func chooseBLASCore() {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["DLKIT_BLAS_CORE"] != "keep",
              let core = GEMM.preferredCoreType else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Still here: the exec failed; go on with the kernels OpenBLAS chose.
        unsetenv("OPENBLAS_CORETYPE")
        #endif
    }
}
