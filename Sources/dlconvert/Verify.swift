import ArgumentParser
import DLKit
import DLSupport
import Foundation

/// `dlconvert verify A B`: do two models compute the same thing?
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run two models on the same seeded random inputs and compare their outputs.",
        discussion: """
            Prints the largest absolute and relative difference per output; exits 1 when any
            element differs by more than atol + rtol * |B|.

            Examples:
              dlconvert verify model.onnx model.ckpt
              dlconvert verify model.onnx converted.onnx --input-shape x=1,3,224,224 --rtol 1e-3
            """)

    @Argument(help: "The first model (.onnx or .ckpt).")
    var first: String

    @Argument(help: "The second model, the reference for relative differences.")
    var second: String

    @Option(help: "Relative tolerance.")
    var rtol = 1e-4

    @Option(help: "Absolute tolerance.")
    var atol = 1e-5

    @OptionGroup var inputShapes: InputShapeOptions

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 0

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        try reportingErrors {
            let shapes = try inputShapes.parsed()
            let options = RuntimeOptions(environment: ProcessInfo.processInfo.environment)
            let a = try Model(contentsOf: URL(fileURLWithPath: first), options: options)
            let b = try Model(contentsOf: URL(fileURLWithPath: second), options: options)
            let inputs = try ModelComparison.randomInputs(for: a.inputs, shapes: shapes, seed: seed)
            let diffs = try ModelComparison.compare(a, b, inputs: inputs, rtol: rtol, atol: atol)
            let ok = diffs.allSatisfy(\.withinTolerance)
            if json {
                let outputs = diffs.map { d in
                    JSON.object([("name", .string(d.name)), ("shape", .array(d.shape.map { .int($0) })),
                                 ("max_abs", number(d.maxAbsolute)), ("max_rel", number(d.maxRelative)),
                                 ("ok", .bool(d.withinTolerance))])
                }
                print(JSON.object([("ok", .bool(ok)), ("rtol", .float(rtol)), ("atol", .float(atol)),
                                   ("seed", .int(Int(truncatingIfNeeded: seed))), ("outputs", .array(outputs))]).serialized())
            } else {
                for d in diffs {
                    print("\(d.name) \(d.shape): max abs diff \(format(d.maxAbsolute)), max rel diff \(format(d.maxRelative))\(d.withinTolerance ? "" : "  OVER TOLERANCE")")
                }
                print(ok ? "ok: outputs agree within rtol \(rtol), atol \(atol)"
                         : "FAILED: \(diffs.filter { !$0.withinTolerance }.count) of \(diffs.count) outputs differ beyond rtol \(rtol), atol \(atol)")
            }
            if !ok { throw ExitCode(1) }
        }
    }

    func format(_ v: Double) -> String { v.isFinite ? String(format: "%.3g", v) : "\(v)" }
    func number(_ v: Double) -> JSON { v.isFinite ? .float(v) : .string("\(v)") }
}
