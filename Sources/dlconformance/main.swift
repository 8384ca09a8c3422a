#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLONNX
import DLRuntime
import DLSupport
import DLTensor
import Foundation

// dlconformance CASE_DIR... — runs ONNX backend test cases (a folder holding model.onnx and
// test_data_set_0/{input,output}_<i>.pb) through the library and prints one JSON line per case:
//   {"case":"test_abs","status":"pass"}
//   {"case":"test_lstm","status":"fail","stage":"load","reason":"..."}
// Before each case it prints `begin <name>` so a driver can tell which case a crash or hang hit.
// Floats compare with |got - want| <= atol + rtol * |want| (NaN equals NaN); everything else
// exactly, except where the spec leaves a value undefined (see `definedCastElements`). Driven by
// scripts/conformance/run.

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

/// Which elements of a Cast/CastLike case's output the ONNX spec defines. Converting a float to a
/// 4- or 2-bit integer is undefined when the rounded value falls outside the target's range, and
/// the suite's expected outputs for those elements are whatever the `ml_dtypes` version that
/// generated them writes (0.7.0 writes 0 for -9.0 -> INT4, earlier versions wrapped to 7). So for a
/// graph of Cast/CastLike nodes from a float input to INT4/UINT4/INT2/UINT2, only the elements whose
/// input rounds (half to even) into range are compared; for every other case this returns nil and
/// all elements are compared.
func definedCastElements(_ graph: Graph, _ inputs: [String: GraphValue]) -> [Bool]? {
    guard !graph.nodes.isEmpty, graph.nodes.allSatisfy({ $0.opType == "Cast" || $0.opType == "CastLike" }),
          let first = graph.inputs.first, case .tensor(let x)? = inputs[first.name], x.dtype.isFloatingPoint,
          let out = graph.outputs.first, graph.outputs.count == 1 else { return nil }
    let range: ClosedRange<Double>
    switch out.type?.dtype {
    case .int4: range = -8...7
    case .uint4: range = 0...15
    case .int2: range = -2...1
    case .uint2: range = 0...3
    default: return nil
    }
    return x.doubles().map { $0.isFinite && range.contains($0.rounded(.toNearestOrEven)) }
}

func compare(_ got: Tensor, _ want: Tensor, name: String, rtol: Double, atol: Double,
             only defined: [Bool]? = nil) throws(CaseFailure) {
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
    if let defined {
        let g = got.doubles(), w = want.doubles()
        guard defined.count == g.count else {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' has \(g.count) elements for \(defined.count) inputs")
        }
        if let i = (0..<g.count).first(where: { defined[$0] && g[$0] != w[$0] }) {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' element \(i) is \(g[i]), expected \(w[i])")
        }
        return
    }
    guard got.bitwiseEqual(want) else {
        let g = got.doubles(), w = want.doubles()
        let i = (0..<g.count).first { g[$0] != w[$0] } ?? 0
        throw CaseFailure(stage: "compare", reason: "output '\(name)' element \(i) is \(g.isEmpty ? 0 : g[i]), expected \(w.isEmpty ? 0 : w[i])")
    }
}

/// Compares values of any kind: tensors as above, sequences element by element, optionals by
/// presence then content.
/// Ops whose outputs are random draws: their cases' expected values are one sample of numpy's
/// generator, which no other implementation reproduces even with a seed (the generators say so),
/// so only dtype and shape are compared, and Bernoulli's values must be 0 or 1.
let randomOps: Set<String> = ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli"]
nonisolated(unsafe) var randomCase = false

func compareValue(_ got: GraphValue, _ want: GraphValue, name: String, rtol: Double, atol: Double,
                  only defined: [Bool]? = nil) throws(CaseFailure) {
    switch (got, want) {
    case (.tensor(let g), .tensor(let w)) where randomCase:
        guard g.dtype == w.dtype, g.shape == w.shape else {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' is \(g.dtype)\(g.shape), expected \(w.dtype)\(w.shape)")
        }
        if let bad = g.doubles().first(where: { $0 != 0 && $0 != 1 }), w.doubles().allSatisfy({ $0 == 0 || $0 == 1 }) {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' holds \(bad); Bernoulli draws are 0 or 1")
        }
    case (.tensor(let g), .tensor(let w)): try compare(g, w, name: name, rtol: rtol, atol: atol, only: defined)
    case (.sequence(let g), .sequence(let w)):
        guard g.count == w.count else {
            throw CaseFailure(stage: "compare", reason: "output '\(name)' has \(g.count) elements, expected \(w.count)")
        }
        for (i, (a, b)) in zip(g, w).enumerated() { try compareValue(a, b, name: "\(name)[\(i)]", rtol: rtol, atol: atol) }
    case (.optional(nil), .optional(nil)): return
    case (.optional(let g?), .optional(let w?)): try compareValue(g, w, name: name, rtol: rtol, atol: atol)
    case (.optional(let g?), _): try compareValue(g, want, name: name, rtol: rtol, atol: atol)
    case (_, .optional(let w?)): try compareValue(got, w, name: name, rtol: rtol, atol: atol)
    default:
        throw CaseFailure(stage: "compare", reason: "output '\(name)' is a \(got.kindName), expected a \(want.kindName)")
    }
}

func runCase(_ dir: String, rtol: Double, atol: Double) throws(CaseFailure) {
    let graph: Graph
    do { graph = try ONNXReader.read(path: dir + "/model.onnx") } catch {
        throw CaseFailure(stage: "load", reason: "\(error)")
    }
    let executor: Executor
    do { executor = try Executor(graph: graph, options: RuntimeOptions(environment: ProcessInfo.processInfo.environment)) } catch { throw CaseFailure(stage: "load", reason: "\(error)") }
    randomCase = graph.nodes.contains { randomOps.contains($0.opType) }
    let data = dir + "/test_data_set_0"
    let inputFiles = dataFiles(data, prefix: "input"), outputFiles = dataFiles(data, prefix: "output")
    let inputInfos = graph.inputs.filter { !graph.initializers.contains($0.name) }
    guard inputFiles.count <= inputInfos.count else {
        throw CaseFailure(stage: "load", reason: "\(inputFiles.count) input files for \(inputInfos.count) inputs")
    }
    var inputs: [String: GraphValue] = [:]
    for (i, f) in inputFiles.enumerated() {
        let info = inputInfos[i]
        do { inputs[info.name] = try ONNXReader.readValue(path: f, kind: info.container ?? .tensor(info.type)) } catch {
            throw CaseFailure(stage: "data", reason: "input \(i): \(error)")
        }
    }
    let defined = definedCastElements(graph, inputs)
    let results: [String: GraphValue]
    do { results = try executor.runValues(inputs) } catch { throw CaseFailure(stage: "run", reason: "\(error)") }
    for (j, f) in outputFiles.enumerated() {
        guard j < graph.outputs.count else { throw CaseFailure(stage: "compare", reason: "more output files than outputs") }
        let info = graph.outputs[j]
        let name = info.name
        let want: GraphValue
        do { want = try ONNXReader.readValue(path: f, kind: info.container ?? .tensor(info.type)) } catch {
            throw CaseFailure(stage: "data", reason: "output \(j): \(error)")
        }
        guard let got = results[name] else { throw CaseFailure(stage: "run", reason: "no value for output '\(name)'") }
        try compareValue(got, want, name: name, rtol: rtol, atol: atol, only: defined)
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
