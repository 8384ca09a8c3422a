#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLONNX
import DLRuntime
import DLTensor
import Foundation

// dlconformance CASE_DIR... — runs ONNX backend test cases (a folder holding model.onnx and
// test_data_set_0/{input,output}_<i>.pb) through the library and prints one JSON line per case:
//   {"case":"test_abs","status":"pass"}
//   {"case":"test_lstm","status":"fail","stage":"load","reason":"..."}
// Before each case it prints `begin <name>` so a driver can tell which case a crash or hang hit.
// Floats compare with |got - want| <= atol + rtol * |want| (NaN equals NaN); everything else
// exactly. Driven by scripts/conformance/run.

let usage = "usage: dlconformance [--rtol R] [--atol A] CASE_DIR..."

var rtol = 1e-3, atol = 1e-5
var dirs: [String] = []
var argv = CommandLine.arguments.dropFirst()
while let a = argv.popFirst() {
    switch a {
    case "--rtol": rtol = argv.popFirst().flatMap(Double.init) ?? rtol
    case "--atol": atol = argv.popFirst().flatMap(Double.init) ?? atol
    case "-h", "--help": print(usage); exit(0)
    default: dirs.append(a)
    }
}
if dirs.isEmpty { FileHandle.standardError.write(Data((usage + "\n").utf8)); exit(2) }

struct CaseFailure: Error {
    let stage: String
    let reason: String
}

/// Writes one line to stdout unbuffered, so a driver sees it even if the next case crashes.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func emit(_ fields: [(String, String)]) {
    let body = fields.map { "\(JSON.string($0.0).serialized()):\(JSON.string($0.1).serialized())" }.joined(separator: ",")
    say("{\(body)}")
}

/// The `<prefix>_<i>.pb` files of a data set folder, in index order.
func dataFiles(_ dir: String, prefix: String) -> [String] {
    var out: [String] = []
    while FileManager.default.fileExists(atPath: "\(dir)/\(prefix)_\(out.count).pb") {
        out.append("\(dir)/\(prefix)_\(out.count).pb")
    }
    return out
}

func compare(_ got: Tensor, _ want: Tensor, name: String, rtol: Double, atol: Double) throws(CaseFailure) {
    guard got.dtype == want.dtype else {
        throw CaseFailure(stage: "compare", reason: "output '\(name)' is \(got.dtype), expected \(want.dtype)")
    }
    guard got.shape == want.shape else {
        throw CaseFailure(stage: "compare", reason: "output '\(name)' has shape \(got.shape), expected \(want.shape)")
    }
    if got.dtype == .string {
        guard got.strings == want.strings else {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' strings differ")
        }
        return
    }
    if got.dtype.isFloatingPoint {
        let g = got.doubles(), w = want.doubles()
        for i in 0..<g.count {
            let a = g[i], b = w[i]
            if a.isNaN && b.isNaN { continue }
            if a == b { continue }
            if !(abs(a - b) <= atol + rtol * abs(b)) {
                throw CaseFailure(stage: "compare", reason: "output '\(name)' element \(i) is \(a), expected \(b)")
            }
        }
        return
    }
    guard got.bitwiseEqual(want) else {
        let g = got.doubles(), w = want.doubles()
        let i = (0..<g.count).first { g[$0] != w[$0] } ?? 0
        throw CaseFailure(stage: "compare", reason: "output '\(name)' element \(i) is \(g.isEmpty ? 0 : g[i]), expected \(w.isEmpty ? 0 : w[i])")
    }
}

func runCase(_ dir: String, rtol: Double, atol: Double) throws(CaseFailure) {
    let graph: Graph
    do { graph = try ONNXReader.read(path: dir + "/model.onnx") } catch {
        throw CaseFailure(stage: "load", reason: "\(error)")
    }
    let executor: Executor
    do { executor = try Executor(graph: graph) } catch { throw CaseFailure(stage: "load", reason: "\(error)") }
    let data = dir + "/test_data_set_0"
    let inputFiles = dataFiles(data, prefix: "input"), outputFiles = dataFiles(data, prefix: "output")
    let inputInfos = graph.inputs.filter { !graph.initializers.contains($0.name) }
    guard inputFiles.count <= inputInfos.count else {
        throw CaseFailure(stage: "load", reason: "\(inputFiles.count) input files for \(inputInfos.count) inputs")
    }
    var inputs: [String: Tensor] = [:]
    for (i, f) in inputFiles.enumerated() {
        do { inputs[inputInfos[i].name] = try ONNXReader.readTensor(path: f) } catch {
            throw CaseFailure(stage: "data", reason: "input \(i): \(error)")
        }
    }
    let results: [String: Tensor]
    do { results = try executor.run(inputs) } catch { throw CaseFailure(stage: "run", reason: "\(error)") }
    for (j, f) in outputFiles.enumerated() {
        guard j < graph.outputs.count else { throw CaseFailure(stage: "compare", reason: "more output files than outputs") }
        let name = graph.outputs[j].name
        let want: Tensor
        do { want = try ONNXReader.readTensor(path: f) } catch {
            throw CaseFailure(stage: "data", reason: "output \(j): \(error)")
        }
        guard let got = results[name] else { throw CaseFailure(stage: "run", reason: "no value for output '\(name)'") }
        try compare(got, want, name: name, rtol: rtol, atol: atol)
    }
}

for dir in dirs {
    let name = dir.split(separator: "/").last.map(String.init) ?? dir
    say("begin \(name)")
    do throws(CaseFailure) {
        try runCase(dir, rtol: rtol, atol: atol)
        emit([("case", name), ("status", "pass")])
    } catch {
        let oneLine = error.reason.replacingOccurrences(of: "\n", with: " ")
        emit([("case", name), ("status", "fail"), ("stage", error.stage), ("reason", String(oneLine.prefix(400)))])
    }
}
