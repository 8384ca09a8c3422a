import DLKernels
import Foundation
import Testing

/// Kernel options are per thread and per call, and travel with a loop to the pool threads that
/// run its chunks.
struct KernelOptionsTests {
    @Test func optionsHoldForTheCallOnlyAndReachThePoolThreads() {
        #expect(KernelOptions.current == KernelOptions())
        let seen = NSLock()
        nonisolated(unsafe) var values: [Bool] = []
        KernelOptions.with(KernelOptions(workers: 2, avx512: false, winograd: false)) {
            #expect(!CPUFeatures.avx512 && !KernelOptions.current.winograd)
            #expect(ParallelFor.workerCount == 2)
            ParallelFor.split(64, parts: 64) { _, _ in
                // Every chunk, on whichever thread runs it, sees the caller's options.
                let v = CPUFeatures.avx512 || KernelOptions.current.winograd || ParallelFor.workerCount != 1
                seen.lock(); values.append(v); seen.unlock()
                usleep(100)
            }
        }
        #expect(values.count == 64 && !values.contains(true))
        #expect(KernelOptions.current == KernelOptions())
        #expect(CPUFeatures.avx512 == CPUFeatures.avx512Present)
    }

    @Test func anotherThreadKeepsItsOwnOptions() {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var other: KernelOptions?
        Thread {
            KernelOptions.with(KernelOptions(workers: 3, winograd: false)) {
                started.signal()
                release.wait()
            }
            done.signal()
        }.start()
        started.wait()
        other = KernelOptions.current
        release.signal()
        done.wait()
        #expect(other == KernelOptions())
    }
}
