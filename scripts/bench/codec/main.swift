import DLKernels
import DLKit
import DLServe
import DLSupport
import DLTensor
import Foundation

// Throughput of the tensor JSON codec: numbers parsed from and printed to `data` arrays, in MB of
// JSON text per second (best of several rounds), for FP32, FP64 and INT64 tensors of 2^20 random
// values written in shortest round-trip form; times are the thread's CPU time. Run by scripts/bench/serve_protocols_bench.py
// (release build):
//     swift build -c release --product dlserve-codec-bench && .build/release/dlserve-codec-bench
// With `--run MODEL ROWS N` it instead times `Model.run` in process on a float32 input of ROWS
// rows (the model's one input, dim 0 free): microseconds per run, best of 5 rounds of N/5 runs,
// then the process's CPU microseconds per run.
// With `--blas-core` it prints the OpenBLAS core the kernels run on (openblas_get_corename).

/// CPU time of this thread spent in `body`: the machine may be shared, and wall time would count
/// the time other processes hold the core.
func seconds(_ body: () -> Void) -> Double {
    func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
    let t0 = now()
    body()
    return now() - t0
}

let arguments = CommandLine.arguments
if arguments.count == 2, arguments[1] == "--blas-core" {
    print(Model.blasCoreName)
    exit(0)
}
if arguments.count == 5, arguments[1] == "--run", let rows = Int(arguments[3]), let n = Int(arguments[4]), rows > 0, n > 0 {
    do {
        GEMM.setThreadCount(1)  // as dlserve's runner threads (ServePipeline, HTTPServer)
        let model = try Model(contentsOf: URL(fileURLWithPath: arguments[2]))
        guard let input = model.inputs.first, let dims = input.type?.dims else {
            print("the model's first input has no declared shape")
            exit(1)
        }
        let shape = [rows] + dims.dropFirst().map { $0.value ?? 1 }
        let x = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float($0 % 97) / 97 })
        for _ in 0..<max(10, n / 10) { _ = try model.run([input.name: x]) }
        // Wall time (the runtime may use worker threads), best of 5 rounds of n/5 runs: the
        // machine may be shared, and the best round is the one least disturbed.
        // Also the process's CPU time per run over all rounds, which load from other processes
        // barely moves.
        var best = Double.infinity
        let per = max(1, n / 5)
        func cpu() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        let cpu0 = cpu()
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<per { _ = try model.run([input.name: x]) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(per))
        }
        print(String(format: "%.2f %.2f", best * 1e6, (cpu() - cpu0) / Double(5 * per) * 1e6))
        exit(0)
    } catch {
        print("\(error)")
        exit(1)
    }
}

let count = 1 << 20
let rounds = 7
var rng = SystemRandomNumberGenerator()
let tensors: [(String, Tensor)] = [
    ("FP32", Tensor(shape: [count], scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &rng) })),
    ("FP64", Tensor(shape: [count], scalars: (0..<count).map { _ in Double.random(in: -1000...1000, using: &rng) })),
    ("INT64", Tensor(shape: [count], scalars: (0..<count).map { _ in Int64.random(in: -1_000_000_000...1_000_000_000, using: &rng) })),
]
print("tensor JSON codec, \(count) values per tensor, best of \(rounds)")
for (name, t) in tensors {
    var text: [UInt8] = []
    var best = Double.infinity
    for _ in 0..<rounds {
        text.removeAll(keepingCapacity: true)
        best = min(best, seconds { TensorJSONCodec.encodeData(t, into: &text) })
    }
    let printMBs = Double(text.count) / best / 1e6
    text.append(0)
    var parseBest = Double.infinity
    var same = false
    for _ in 0..<rounds {
        var back: Tensor? = nil
        parseBest = min(parseBest, seconds {
            back = text.withUnsafeBytes { try? TensorJSONCodec.decodeData(UnsafeRawBufferPointer(rebasing: $0.dropLast()), dtype: t.dtype, shape: t.shape) }
        })
        same = back.map { b in b.withUnsafeBytes { x in t.withUnsafeBytes { y in x.elementsEqual(y) } } } ?? false
    }
    let parseMBs = Double(text.count - 1) / parseBest / 1e6
    print(String(format: "%-5@  print %7.1f MB/s  parse %7.1f MB/s  (%.1f bytes/value, round trip %@)",
                 name, printMBs, parseMBs, Double(text.count - 1) / Double(count), same ? "exact" : "DIFFERS"))
}
