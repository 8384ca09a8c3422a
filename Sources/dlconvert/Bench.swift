import ArgumentParser
import DLKit
import Foundation

/// `dlconvert bench MODEL`: loads a model and times inference in-process (scripts/bench drives it).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time inference of a model in-process: median latency, throughput, peak memory.",
        discussion: """
            Inputs are random floats in [-1, 1) and integer zeros (a valid index for any embedding
            or lookup); dynamic dimensions come from --input-shape, and those it does not give are
            set to --batch. Warm-up runs come first, then timed runs until --seconds pass (at least
            --min-runs). --cold loads, runs once, prints the load and first-run times and exits,
            for measuring process start to first answer.
            """)

    @Argument(help: "An ONNX model or DLKit checkpoint.")
    var model: String

    @Option(help: "Size given to every dynamic input dimension --input-shape does not set.")
    var batch = 1

    @OptionGroup var inputShapes: InputShapeOptions

    @Option(help: "Threads for GEMM and the runtime's own loops together.")
    var threads = 1

    @Option(help: "Seconds of timed runs.")
    var seconds = 2.0

    @Option(help: "Least number of timed runs.")
    var minRuns = 10

    @Option(help: "Warm-up runs before timing.")
    var warmup = 3

    @Option(help: "Read the (single) input from this file of raw little-endian float32 instead of random values.")
    var inputRaw: String?

    @Option(help: "Write the first output of the first run to this file as raw little-endian float32.")
    var outputRaw: String?

    @Flag(help: "Load, run once and exit (cold start).")
    var cold = false

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        try reportingErrors {
            guard batch >= 1, threads >= 1, seconds >= 0, minRuns >= 1, warmup >= 0 else {
                throw DLKitError.invalidArgument("bench: --batch, --threads, --min-runs must be at least 1; --seconds, --warmup at least 0")
            }
            let environment = ProcessInfo.processInfo.environment
            Model.setThreadCount(threads, environment: environment)
            let t0 = Self.now()
            let m = try Model(contentsOf: URL(fileURLWithPath: model), options: RuntimeOptions(environment: environment))
            var inputs = try Bench.timingInputs(for: m, shapes: inputShapes.parsed(), batch: batch)
            if let inputRaw, let first = m.inputs.first, let shape = inputs[first.name]?.shape {
                guard let data = FileManager.default.contents(atPath: inputRaw),
                      data.count == shape.reduce(4, *) else {
                    throw DLKitError.invalidArgument("bench: \(inputRaw) must hold \(shape.reduce(1, *)) float32 values for input '\(first.name)' \(shape)")
                }
                inputs[first.name] = try data.withUnsafeBytes { (raw) throws(DLKitError) -> Tensor in
                    do { return try Tensor(dtype: .float32, shape: shape, bytes: raw) } catch {
                        throw DLKitError.invalidArgument("bench: \(inputRaw): \(error)")
                    }
                }
            }
            let t1 = Self.now()
            let firstResult = try m.run(inputs)
            let t2 = Self.now()
            if let outputRaw, let name = m.outputs.first?.name, let y = firstResult[name] {
                let data = y.withUnsafeBytes { Data($0) }
                guard FileManager.default.createFile(atPath: outputRaw, contents: data) else {
                    throw DLKitError.invalidArgument("bench: cannot write \(outputRaw)")
                }
            }
            var fields: [(String, String)] = [
                ("model", "\"\(m.name)\""), ("batch", "\(batch)"), ("threads", "\(threads)"),
                ("blas_core", "\"\(Model.blasCoreName)\""),
                ("load_ms", Self.fmt((t1 - t0) * 1e3)), ("first_run_ms", Self.fmt((t2 - t1) * 1e3)),
            ]
            if !cold {
                for _ in 0..<warmup { _ = try m.run(inputs) }
                var times: [Double] = []
                let start = Self.now()
                while times.count < minRuns || Self.now() - start < seconds {
                    let a = Self.now()
                    _ = try m.run(inputs)
                    times.append(Self.now() - a)
                }
                times.sort()
                let median = times[times.count / 2]
                fields += [
                    ("runs", "\(times.count)"), ("median_ms", Self.fmt(median * 1e3)),
                    ("min_ms", Self.fmt(times[0] * 1e3)),
                    ("throughput", Self.fmt(Double(batch) / median)),
                ]
            }
            fields.append(("peak_rss_mb", Self.fmt(Self.peakRSSMegabytes())))
            if json {
                print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
            } else {
                for (k, v) in fields { print("\(k): \(v)") }
            }
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    static func fmt(_ x: Double) -> String { String(format: "%.4f", x) }

    /// Largest resident set of this process so far: VmHWM of /proc/self/status (getrusage's
    /// ru_maxrss would include the parent's peak from before exec on Linux); 0 where unknown.
    static func peakRSSMegabytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            // "VmHWM:\t    2140 kB"
            return (Double(String(line.filter(\.isNumber))) ?? 0) / 1024
        }
        return 0
    }

    /// Random floats in [-1, 1) and zero integers, shaped by `shapes` and `batch` for dynamic
    /// dims: what bench and profile feed a model.
    static func timingInputs(for m: Model, shapes: [String: [Int]], batch: Int) throws(DLKitError) -> [String: Tensor] {
        var inputs = try ModelComparison.randomInputs(for: m.inputs, shapes: shapes, seed: 0, otherDims: batch)
        for (name, t) in inputs where !t.dtype.isFloatingPoint { inputs[name] = Tensor(zeros: t.dtype, shape: t.shape) }
        return inputs
    }
}
