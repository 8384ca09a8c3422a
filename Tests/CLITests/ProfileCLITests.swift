import DLKit
import DLTestSupport
import Foundation
import Testing

/// `dlconvert profile` and `bench --input-shape` on a model whose axes are all dynamic
/// (fixtures/models/runtime/repeated_dims.onnx): every node timed, a Chrome trace that parses,
/// the shapes the user gave, and one-line errors for bad shapes.
struct ProfileCLITests {
    let model = TestPackage.fixture("models/runtime/repeated_dims.onnx")
    let shapes = ["--input-shape", "x=1,3,48,192", "--input-shape", "s=96,1"]

    @Test func profileTimesEveryNodeAndWritesATrace() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dlkit-profile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let trace = dir.appendingPathComponent("trace.json").path
        let r = try runProcess(TestPackage.tool("dlconvert"), ["profile", model, "--runs", "3", "--json", "--trace", trace] + shapes)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try parseJSON(r.stdout)
        guard case .array(let nodes)? = json["nodes"], case .array(let ops)? = json["ops"] else { Issue.record("\(r.stdout)"); return }
        #expect(!nodes.isEmpty && !ops.isEmpty)
        #expect(json["inputs"] == .array([.string("x=1,3,48,192"), .string("s=96,1")]), "\(r.stdout)")
        // Shares of the ops add up to one; every node names its op and input shapes.
        let shares = ops.compactMap { $0["share"].flatMap { if case .number(let t) = $0 { Double(t) } else { nil } } }
        #expect(shares.count == ops.count && abs(shares.reduce(0, +) - 1) < 1e-6, "\(ops)")
        for n in nodes { #expect(n["op"] != nil && n["input_shapes"] != nil, "\(n)") }
        // The trace: a run event per profiled run and a node event per node and run.
        let text = try String(contentsOfFile: trace, encoding: .utf8)
        guard case .array(let events) = try parseJSON(text) else { Issue.record("trace is not an array"); return }
        #expect(events.filter { $0["cat"] == .string("Session") }.count == 3)
        #expect(events.filter { $0["cat"] == .string("Node") }.count == 3 * nodes.count)
        #expect(events.allSatisfy { $0["ph"] == .string("X") && $0["ts"] != nil && $0["dur"] != nil })
    }

    @Test func benchTakesInputShapes() throws {
        let r = try runProcess(TestPackage.tool("dlconvert"), ["bench", model, "--seconds", "0", "--min-runs", "2", "--json"] + shapes)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try parseJSON(r.stdout)
        #expect(json["runs"] != nil && json["blas_core"] != nil, "\(r.stdout)")
    }

    @Test func badInputShapesGetOneLine() throws {
        for bad in [["--input-shape", "x=1,3,-1,192"], ["--input-shape", "nope=1"], ["--input-shape", "x1,3"],
                    ["--input-shape", "x=1,3,48,192", "--input-shape", "x=1,3,48,192"]] {
            let r = try runProcess(TestPackage.tool("dlconvert"), ["profile", model] + bad)
            #expect(r.status != 0, "\(bad)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("input"), "\(bad): \(r.stderr)")
        }
    }

    @Test func badInputValuesGetOneLine() throws {
        for bad in [["--input-value", "nope=1"], ["--input-value", "x=one"], ["--input-value", "=3"],
                    ["--input-value", "s=inf"], ["--input-value", "s=1", "--input-value", "s=2"]] {
            let r = try runProcess(TestPackage.tool("dlconvert"), ["profile", model, "--runs", "1"] + shapes + bad)
            #expect(r.status != 0, "\(bad)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("--input-value"), "\(bad): \(r.stderr)")
        }
        let r = try runProcess(TestPackage.tool("dlconvert"), ["bench", model, "--seconds", "0", "--min-runs", "1", "--input-value", "s=0.5"] + shapes)
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func aScalarInputShapeIsNameEquals() throws {
        // silero VAD's `sr` input is a scalar of dynamic shape in some exports; `sr=` names rank 0.
        let r = try runProcess(TestPackage.tool("dlconvert"), ["profile", model, "--runs", "1", "--input-shape", "x="] + shapes.suffix(2))
        #expect(r.status != 0 && r.stderr.contains("does not fit"), "\(r.stderr)")
    }
}
