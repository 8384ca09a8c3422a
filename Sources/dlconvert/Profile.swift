import ArgumentParser
import DLKit
import DLSupport
import Foundation

/// `dlconvert profile MODEL`: where a run's time goes, per node and per op.
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time every node of a model's run: per op and per node, with shapes and shares.",
        discussion: """
            Runs the model --warmup times, then --runs profiled runs, and reports each node's
            mean time as the runtime runs it (after its fusions). Inputs are random as in bench.
            --trace writes the profiled runs as a Chrome trace (the event format ONNX Runtime's
            profiler writes), which chrome://tracing and Perfetto open.

            Examples:
              dlconvert profile model.onnx --input-shape images=1,3,640,640
              dlconvert profile model.onnx --threads 2 --trace run.json
              dlconvert profile model.onnx --json > profile.json
            """)

    @OptionGroup var timing: TimingOptions

    @Option(help: "Profiled runs (node times are their mean).")
    var runs = 10

    @Option(help: "Runs before profiling (the first builds the plan and packs weights).")
    var warmup = 3

    @Option(help: "Nodes listed in the text report, slowest first.")
    var top = 20

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Also write a Chrome trace of the profiled runs to this file.")
    var trace: String?

    func run() throws {
        try reportingErrors {
            guard runs >= 1, warmup >= 0, top >= 0 else {
                throw DLKitError.invalidArgument("profile: --runs must be at least 1; --warmup, --top at least 0")
            }
            let m = try timing.load("profile")
            let inputs = try timing.inputs(for: m)
            for _ in 0..<warmup { _ = try m.run(inputs) }
            var profiled: [(start: Double, wall: Double, timings: [NodeTiming])] = []
            let origin = Bench.now()
            for _ in 0..<runs {
                let a = Bench.now()
                let timings = try m.profile(inputs).timings
                profiled.append((a - origin, Bench.now() - a, timings))
            }
            let report = ProfileReport(profiled.map(\.timings))
            let wall = profiled.map(\.wall).sorted()[profiled.count / 2]
            if let trace {
                let events = ProfileReport.traceEvents(profiled.map { ($0.start, $0.wall, $0.timings) }, model: m.name)
                do {
                    try AtomicFileWriter.write(Array(events.serialized().utf8), to: trace)
                } catch {
                    throw DLKitError.invalidArgument("profile: cannot write \(trace): \(error)")
                }
            }
            let shapes = m.inputs.compactMap { v in inputs[v.name].map { "\(v.name)=\($0.shape.map(String.init).joined(separator: ","))" } }
            if json {
                print(report.json(model: m.name, threads: timing.threads, blasCore: Model.blasCoreName, runs: runs,
                                  inputShapes: shapes, wallMilliseconds: wall * 1e3).serialized())
            } else {
                print(report.text(model: m.name, threads: timing.threads, blasCore: Model.blasCoreName, runs: runs,
                                  inputShapes: shapes, wallMilliseconds: wall * 1e3, top: top))
            }
        }
    }
}

/// Node timings of several runs, averaged per node and summed per op.
struct ProfileReport {
    struct NodeRow {
        let name: String
        let opType: String
        let inputShapes: [[Int]]
        /// Mean milliseconds over the runs.
        var milliseconds: Double
    }

    struct OpRow {
        let opType: String
        var count: Int
        var milliseconds: Double
    }

    /// One row per node of the first run, in execution order.
    let nodes: [NodeRow]
    /// One row per op, slowest first.
    let ops: [OpRow]
    /// Sum of the nodes' mean times.
    let total: Double

    /// - Parameter runs: each run's timings; runs of one plan list the same nodes in the same
    ///   order, and a run that does not (control flow choosing other nodes) adds its nodes by name.
    init(_ runs: [[NodeTiming]]) {
        var rows: [NodeRow] = []
        var index: [String: Int] = [:]
        for run in runs {
            for (k, t) in run.enumerated() {
                let ms = Double(t.duration) / 1e6 / Double(runs.count)
                let key = "\(k)\u{0}\(t.name)"
                if let i = index[key] {
                    rows[i].milliseconds += ms
                } else {
                    index[key] = rows.count
                    rows.append(NodeRow(name: t.name, opType: t.opType, inputShapes: t.inputShapes, milliseconds: ms))
                }
            }
        }
        var byOp: [String: OpRow] = [:]
        for r in rows {
            byOp[r.opType, default: OpRow(opType: r.opType, count: 0, milliseconds: 0)].count += 1
            byOp[r.opType]?.milliseconds += r.milliseconds
        }
        nodes = rows
        ops = byOp.values.sorted { ($0.milliseconds, $1.opType) > ($1.milliseconds, $0.opType) }
        total = rows.reduce(0) { $0 + $1.milliseconds }
    }

    func share(_ ms: Double) -> Double { total > 0 ? ms / total : 0 }

    static func shapeText(_ shapes: [[Int]]) -> String {
        shapes.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: " ")
    }

    func text(model: String, threads: Int, blasCore: String, runs: Int, inputShapes: [String],
              wallMilliseconds: Double, top: Int) -> String {
        var out = "model: \(model)\ninputs: \(inputShapes.joined(separator: " "))\n"
        out += "threads: \(threads)  blas_core: \(blasCore)  runs: \(runs)\n"
        out += String(format: "run: %.3f ms median wall, %.3f ms in %d nodes\n\n", wallMilliseconds, total, nodes.count)
        out += "op                              nodes        ms   share\n"
        for o in ops {
            out += o.opType.padding(toLength: max(30, o.opType.count), withPad: " ", startingAt: 0)
            out += String(format: " %7d %9.3f %6.1f%%\n", o.count, o.milliseconds, share(o.milliseconds) * 100)
        }
        if top > 0 {
            out += "\nslowest nodes                                      op                    ms   share  input shapes\n"
            for r in nodes.sorted(by: { $0.milliseconds > $1.milliseconds }).prefix(top) {
                out += r.name.padding(toLength: max(50, r.name.count), withPad: " ", startingAt: 0) + " "
                out += r.opType.padding(toLength: max(18, r.opType.count), withPad: " ", startingAt: 0)
                out += String(format: " %7.3f %6.1f%%  ", r.milliseconds, share(r.milliseconds) * 100) + Self.shapeText(r.inputShapes) + "\n"
            }
        }
        return out
    }

    func json(model: String, threads: Int, blasCore: String, runs: Int, inputShapes: [String],
              wallMilliseconds: Double) -> JSON {
        func shapes(_ s: [[Int]]) -> JSON { .array(s.map { .array($0.map { .int($0) }) }) }
        return .object([
            ("model", .string(model)), ("threads", .int(threads)), ("blas_core", .string(blasCore)),
            ("runs", .int(runs)), ("inputs", .array(inputShapes.map { .string($0) })),
            ("wall_ms", .float(wallMilliseconds)), ("nodes_ms", .float(total)),
            ("ops", .array(ops.map { o in
                .object([("op", .string(o.opType)), ("nodes", .int(o.count)), ("ms", .float(o.milliseconds)),
                         ("share", .float(share(o.milliseconds)))])
            })),
            ("nodes", .array(nodes.map { r in
                .object([("name", .string(r.name)), ("op", .string(r.opType)), ("input_shapes", shapes(r.inputShapes)),
                         ("ms", .float(r.milliseconds)), ("share", .float(share(r.milliseconds)))])
            })),
        ])
    }

    /// Chrome trace events ("X" complete events in microseconds): one per run and one per node,
    /// as ONNX Runtime's profiler writes them (`cat` "Session" and "Node", `args.op_name`).
    static func traceEvents(_ runs: [(start: Double, wall: Double, timings: [NodeTiming])], model: String) -> JSON {
        var events: [JSON] = []
        let pid = JSON.int(Int(getpid())), tid = JSON.int(0)
        for (k, run) in runs.enumerated() {
            let base = run.start * 1e6
            events.append(.object([
                ("cat", .string("Session")), ("pid", pid), ("tid", tid), ("ph", .string("X")),
                ("name", .string("model_run")), ("ts", .float(base)), ("dur", .float(run.wall * 1e6)),
                ("args", .object([("model", .string(model)), ("run", .int(k))])),
            ]))
            for t in run.timings {
                events.append(.object([
                    ("cat", .string("Node")), ("pid", pid), ("tid", tid), ("ph", .string("X")),
                    ("name", .string(t.name)), ("ts", .float(base + Double(t.start) / 1e3)),
                    ("dur", .float(Double(t.duration) / 1e3)),
                    ("args", .object([("op_name", .string(t.opType)),
                                      ("input_shapes", .string(shapeText(t.inputShapes)))])),
                ]))
            }
        }
        return .array(events)
    }
}
