import DLKit
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// A running `dlserve`: requests written from a background thread (so a full pipe never blocks
/// the test), answers read line by line, stderr collected.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private let input = Pipe(), output = Pipe(), errors = Pipe()
    private var pending = Data()
    private let errLock = NSLock()
    private var errData = Data()
    private let errDone = DispatchSemaphore(value: 0)

    init(_ arguments: [String]) throws {
        Glibc.signal(SIGPIPE, SIG_IGN)  // writing to a server that has exited must not kill the tests
        process.executableURL = URL(fileURLWithPath: TestPackage.tool("dlserve"))
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let handle = errors.fileHandleForReading
        Thread { [self] in
            let d = handle.readDataToEndOfFile()
            errLock.lock()
            errData = d
            errLock.unlock()
            errDone.signal()
        }.start()
    }

    /// Writes `text` from a background thread, closing stdin afterwards when `close` is set.
    func send(_ text: String, close: Bool = false) { send(bytes: Array(text.utf8), close: close) }

    /// Writes raw `bytes` (request lines and binary tensor data) from a background thread.
    func send(bytes: [UInt8], close: Bool = false) {
        let fd = input.fileHandleForWriting.fileDescriptor
        let handle = input.fileHandleForWriting
        Thread {
            bytes.withUnsafeBytes { b in
                var done = 0
                while done < b.count, let base = b.baseAddress {
                    let n = write(fd, base + done, b.count - done)
                    if n <= 0 { break }
                    done += n
                }
            }
            if close { try? handle.close() }
        }.start()
    }

    /// The next `count` bytes of output (binary tensor data after an answer line), or nil when
    /// the output ends first.
    func readBytes(_ count: Int) -> [UInt8]? {
        while pending.count < count {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            pending.append(chunk)
        }
        let bytes = [UInt8](pending.prefix(count))
        pending = Data(pending.dropFirst(count))
        return bytes
    }

    /// Closes our end of the answers pipe: the server's next write fails.
    func closeOutput() { try? output.fileHandleForReading.close() }

    /// The next answer line, or nil at end of output.
    func readLine() -> String? {
        while true {
            if let nl = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                pending = Data(pending[(nl + 1)...])
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self) }
            pending.append(chunk)
        }
    }

    func readAll() -> [String] {
        var lines: [String] = []
        while let l = readLine() { lines.append(l) }
        return lines
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the exit; returns the status and everything written to stderr.
    func wait() -> (Int32, String) {
        process.waitUntilExit()
        errDone.wait()
        errLock.lock()
        defer { errLock.unlock() }
        return (process.terminationStatus, String(decoding: errData, as: UTF8.self))
    }
}

/// Runs dlserve over `lines` (stdin closed after them) and returns answers, status and stderr.
func serve(_ arguments: [String], _ lines: [String]) throws -> (answers: [JSON], status: Int32, stderr: String) {
    let p = try ServeProcess(arguments)
    p.send(lines.map { $0 + "\n" }.joined(), close: true)
    let out = p.readAll()
    let (status, err) = p.wait()
    return (try out.map { try parseJSON($0) }, status, err)
}

let mlpPath = TestPackage.fixture("models/mlp.onnx")
let cnnPath = TestPackage.fixture("models/cnn.onnx")
let dtypesPath = TestPackage.fixture("models/serve/dtypes.onnx")
let intAddPath = TestPackage.fixture("models/serve/int_add.onnx")
let reshapePath = TestPackage.fixture("models/serve/reshape.onnx")

/// An MLP request with `rows` rows of deterministic values.
func mlpRequest(id: String, rows: Int = 1, model: Bool = false, seed: Int = 0) -> String {
    let xs = (0..<rows * 784).map { JSON.float(Float(($0 * 31 + seed * 7) % 97) / 97 - 0.5).serialized() }
    return #"{"id":"\#(id)"\#(model ? #","model_name":"mlp""# : ""),"inputs":[{"name":"x","shape":[\#(rows),784],"datatype":"FP32","data":[\#(xs.joined(separator: ","))]}]}"#
}

func intAddRequest(id: String, rows: Int, seed: Int) -> String {
    func data(_ k: Int) -> String { (0..<rows * 3).map { String(($0 + 1) * (seed + k) - 40) }.joined(separator: ",") }
    let t = { (n: String, type: String, k: Int) in #"{"name":"\#(n)","shape":[\#(rows),3],"datatype":"\#(type)","data":[\#(data(k))]}"# }
    return #"{"id":"\#(id)","model_name":"int_add","inputs":[\#(t("a", "INT64", 1)),\#(t("b", "INT64", 2)),\#(t("p", "INT32", 3)),\#(t("q", "INT32", 4))]}"#
}

struct ServeTests {
    /// Values at the edges of every datatype, in the writer's canonical form.
    static let edgeValues: [(String, String)] = [
        ("bool", "[true,false,false,true]"),
        ("uint8", "[0,255,7,1]"), ("uint16", "[0,65535,7,1]"), ("uint32", "[0,4294967295,7,1]"),
        ("uint64", "[0,18446744073709551615,9007199254740993,1]"),
        ("int8", "[-128,127,0,-1]"), ("int16", "[-32768,32767,0,-1]"), ("int32", "[-2147483648,2147483647,0,-1]"),
        ("int64", "[-9223372036854775808,9223372036854775807,-9007199254740993,1]"),
        ("fp16", #"[0.1,65504.0,"NaN",6e-08]"#),
        ("fp32", #"[0.1,3.4028235e+38,"-Infinity",1e-45]"#),
        ("fp64", #"[0.1,1.7976931348623157e+308,"Infinity",5e-324]"#),
    ]

    @Test func everyDatatypeTravelsInAndOutUnchanged() throws {
        let inputs = Self.edgeValues.map { name, data in
            #"{"name":"\#(name)","shape":[2,2],"datatype":"\#(name.uppercased())","data":\#(data)}"#
        }
        // The same values nested, and as base64 both ways.
        let nested = Self.edgeValues.map { name, data -> String in
            let items = try? parseJSON(data)
            guard case .array(let v)? = items else { return "" }
            let rows = "[[\(v[0].serialized()),\(v[1].serialized())],[\(v[2].serialized()),\(v[3].serialized())]]"
            return #"{"name":"\#(name)","shape":[2,2],"datatype":"\#(name.uppercased())","data":\#(rows)}"#
        }
        let lines = [
            #"{"id":"flat","inputs":[\#(inputs.joined(separator: ","))]}"#,
            #"{"id":"nested","inputs":[\#(nested.joined(separator: ","))]}"#,
            #"{"id":"b64","inputs":[\#(inputs.joined(separator: ","))],"parameters":{"data_encoding":"base64"}}"#,
        ]
        let r = try serve([dtypesPath], lines)
        #expect(r.status == 0, "\(r.stderr)")
        try #require(r.answers.count == 3)
        var jsonBytes: [String: Data] = [:]
        for (k, answer) in r.answers.enumerated() {
            guard case .array(let outs)? = answer["outputs"] else { Issue.record("\(answer)"); continue }
            #expect(outs.count == Self.edgeValues.count)
            for (o, (name, data)) in zip(outs, Self.edgeValues) {
                #expect(o["name"] == .string("\(name)_out"))
                #expect(o["datatype"] == .string(name.uppercased()))
                #expect(o["shape"] == .array([.int(2), .int(2)]))
                if k < 2 {
                    #expect(o["data"] == (try parseJSON(data)), "\(name): \(o["data"]?.serialized() ?? "none")")
                } else {
                    guard case .string(let b64)? = o["data"], let bytes = Data(base64Encoded: b64) else {
                        Issue.record("\(name) is not base64: \(o.serialized())"); continue
                    }
                    #expect(o["parameters"] == .object([("data_encoding", .string("base64"))]))
                    jsonBytes[name] = bytes
                }
            }
        }
        // The base64 answer holds the little-endian bytes of the same values.
        #expect(jsonBytes["int64"] == Data([Int64.min, .max, -9007199254740993, 1].flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }))
        #expect(jsonBytes["fp32"] == Data([Float(0.1), .greatestFiniteMagnitude, -.infinity, Float(bitPattern: 1)].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
        #expect(jsonBytes["bool"] == Data([1, 0, 0, 1]))

        // base64 in: feed the answer's bytes back as an input.
        let fp64 = try #require(jsonBytes["fp64"]?.base64EncodedString())
        let back = inputs.map { $0.hasPrefix(#"{"name":"fp64""#)
            ? #"{"name":"fp64","shape":[2,2],"datatype":"FP64","parameters":{"data_encoding":"base64"},"data":"\#(fp64)"}"# : $0 }
        let r2 = try serve([dtypesPath], [#"{"id":"in64","inputs":[\#(back.joined(separator: ","))],"outputs":[{"name":"fp64_out"}]}"#])
        #expect(r2.answers.first?["outputs"] == .array([.object([
            ("name", .string("fp64_out")), ("shape", .array([.int(2), .int(2)])), ("datatype", .string("FP64")),
            ("data", try parseJSON(#"[0.1,1.7976931348623157e+308,"Infinity",5e-324]"#)),
        ])]))
    }

    @Test func metadataReadyAndRoutingAcrossModels() throws {
        let lines = [
            #"{"id":1,"method":"metadata","model_name":"int_add"}"#,
            #"{"id":2,"method":"metadata","model_name":"mlp"}"#,
            #"{"id":3,"method":"ready"}"#,
            #"{"id":4,"method":"ready","model_name":"mlp"}"#,
            #"{"id":5,"method":"ready","model_name":"gpt"}"#,
            mlpRequest(id: "6", model: true),
            intAddRequest(id: "7", rows: 1, seed: 1),
            mlpRequest(id: "8"),  // no model_name with two models
        ]
        let r = try serve([mlpPath, intAddPath], lines)
        #expect(r.status == 0)
        try #require(r.answers.count == 8)
        let a = r.answers
        #expect(a[0]["name"] == .string("int_add") && a[0]["platform"] == .string("dlkit"))
        #expect(a[0]["inputs"] == (try parseJSON(#"[{"name":"a","datatype":"INT64","shape":[-1,3]},{"name":"b","datatype":"INT64","shape":[-1,3]},{"name":"p","datatype":"INT32","shape":[-1,3]},{"name":"q","datatype":"INT32","shape":[-1,3]}]"#)))
        #expect(a[1]["outputs"] == (try parseJSON(#"[{"name":"y","datatype":"FP32","shape":[-1,10]}]"#)))
        #expect(a[2] == (try parseJSON(#"{"id":3,"ready":true}"#)))
        #expect(a[3] == (try parseJSON(#"{"id":4,"model_name":"mlp","ready":true}"#)))
        #expect(a[4]["error"] == .string("no model named 'gpt' (loaded: mlp, int_add)"))
        #expect(a[5]["model_name"] == .string("mlp"))
        #expect(a[6]["model_name"] == .string("int_add"))
        // c = a + b = (i+1)*2 - 40 + (i+1)*3 - 40, r = p + q = (i+1)*4 - 40 + (i+1)*5 - 40
        guard case .array(let outs)? = a[6]["outputs"] else { Issue.record("\(a[6])"); return }
        #expect(outs[0]["data"] == .array([-75, -70, -65].map { .int($0) }))
        #expect(outs[1]["data"] == .array([-71, -62, -53].map { .int($0) }))
        #expect(a[7]["error"] == .string(#"several models are loaded; name one with "model_name" (mlp, int_add)"#))
        #expect(r.stderr.contains("loaded 'int_add' from \(intAddPath) (inputs a: int64[batch,3], b: int64[batch,3], p: int32[batch,3], q: int32[batch,3]; outputs c: int64[batch,3], r: int32[batch,3])"))
    }

    @Test func duplicateModelNamesStopTheStart() throws {
        let dir = TemporaryFolder()
        try FileManager.default.copyItem(atPath: mlpPath, toPath: dir.file("mlp.onnx"))
        let r = try runProcess(TestPackage.tool("dlserve"), [mlpPath, dir.file("mlp.onnx")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("\(dir.file("mlp.onnx")): a model named 'mlp' is already loaded from \(mlpPath)"))
        #expect(r.stdout.isEmpty)
    }

    @Test func base64AnswersHoldTheSameFloats() throws {
        let plain = mlpRequest(id: "j", rows: 2)
        let b64 = String(plain.dropLast()) + #","parameters":{"data_encoding":"base64"}}"#
        let perOutput = String(plain.dropLast()) + #","outputs":[{"name":"y","parameters":{"data_encoding":"base64"}}]}"#
        let r = try serve([mlpPath], [plain, b64, perOutput])
        try #require(r.answers.count == 3)
        guard case .array(let outs)? = r.answers[0]["outputs"], case .array(let values)? = outs[0]["data"] else {
            Issue.record("\(r.answers[0])"); return
        }
        let floats = values.compactMap { v -> Float? in if case .number(let t) = v { Float(t) } else { nil } }
        let bits = Data(floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
        for a in r.answers.dropFirst() {
            guard case .array(let o)? = a["outputs"], case .string(let text)? = o[0]["data"] else { Issue.record("\(a)"); continue }
            #expect(Data(base64Encoded: text) == bits)
        }
    }

    @Test func dynamicBatchingGivesTheSameAnswersAsRunningAlone() throws {
        var lines: [String] = []
        for i in 0..<120 {
            lines.append(i % 3 == 2 ? intAddRequest(id: "\(i)", rows: 1 + i % 4, seed: i)
                                    : mlpRequest(id: "\(i)", rows: 1 + i % 3, model: true, seed: i))
        }
        let alone = try serve([mlpPath, intAddPath], lines)
        let batched = try serve([mlpPath, intAddPath, "--max-batch", "8"], lines)
        #expect(alone.status == 0 && batched.status == 0)
        try #require(alone.answers.count == 120 && batched.answers.count == 120)
        #expect(batched.stderr.contains("'mlp': dynamic batching over dim 0 ('batch'), up to 8 requests"))
        #expect(batched.stderr.contains("dynamic batches)"), "\(batched.stderr)")
        for (a, b) in zip(alone.answers, batched.answers) {
            #expect(a["id"] == b["id"])
            if a["model_name"] == .string("int_add") {
                #expect(a == b)  // integers: identical
                continue
            }
            guard case .array(let oa)? = a["outputs"], case .array(let ob)? = b["outputs"],
                  case .array(let da)? = oa[0]["data"], case .array(let db)? = ob[0]["data"] else {
                Issue.record("\(a) \(b)"); continue
            }
            #expect(oa[0]["shape"] == ob[0]["shape"])
            let x = da.compactMap { if case .number(let t) = $0 { Double(t) } else { nil } }
            let y = db.compactMap { if case .number(let t) = $0 { Double(t) } else { nil } }
            // GEMM may sum in another order for more rows: equal to float32 rounding.
            #expect(x.count == y.count && allClose(x, y, rtol: 1e-5, atol: 1e-6), "\(a["id"] ?? .null)")
        }
    }

    @Test func answersComeInRequestOrderWithSeveralThreads() throws {
        var lines: [String] = []
        for i in 0..<300 {
            switch i % 5 {
            case 0: lines.append(#"{"id":\#(i),"method":"metadata","model_name":"int_add"}"#)
            case 1: lines.append(#"{"id":\#(i),"model_name":"mlp","inputs":[]}"#)
            case 2: lines.append(intAddRequest(id: "\(i)", rows: 2, seed: i))
            default: lines.append(mlpRequest(id: "\(i)", rows: 1 + i % 7, model: true, seed: i))
            }
        }
        let r = try serve([mlpPath, intAddPath, "--threads", "2", "--max-batch", "4"], lines)
        #expect(r.status == 0)
        try #require(r.answers.count == 300)
        for (i, a) in r.answers.enumerated() {
            let want: JSON = i % 5 == 0 || i % 5 == 1 ? .int(i) : .string("\(i)")
            #expect(a["id"] == want)
            switch i % 5 {
            case 0: #expect(a["name"] == .string("int_add"))
            case 1: #expect(a["error"] == .string("input 'x' is missing"))
            default: #expect(a["outputs"] != nil)
            }
        }
        #expect(r.stderr.contains("answered 300 requests"))
    }

    @Test func everyBadInputIsAnsweredAndTheNextRequestSucceeds() throws {
        let zeros6 = "[1,2,3,4,5,6]"
        let long = #"{"id":"long","model_name":"mlp","pad":""# + String(repeating: "x", count: 5000) + #""}"#
        let bad: [(String, JSON, String)] = [
            ("this is not json", .null, "the request is not valid JSON: unexpected 't', expected a value at byte 0"),
            (long, .null, "the request line has \(long.utf8.count) bytes, over the server's line limit of 4096; it was skipped"),
            (#"{"id":"deep","model_name":"mlp","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":"# + String(repeating: "[", count: 80) + String(repeating: "]", count: 80) + "}]}",
             .string("deep"), "the request nests deeper than 64 levels"),
            (#"{"id":"model","model_name":"gpt","inputs":[]}"#, .string("model"), "no model named 'gpt' (loaded: mlp, reshape)"),
            (#"{"id":"name","model_name":"mlp","inputs":[{"name":"z","shape":[1],"datatype":"FP32","data":[0]}]}"#,
             .string("name"), "'z' is not an input of the model (inputs: x)"),
            (#"{"id":"missing","model_name":"reshape","inputs":[{"name":"x","shape":[6],"datatype":"FP32","data":\#(zeros6)}]}"#,
             .string("missing"), "input 'shape' is missing"),
            (#"{"id":"shape","model_name":"mlp","inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":\#(zeros6)}]}"#,
             .string("shape"), "input 'x' has shape [2, 3], expected [batch,784]"),
            (#"{"id":"type","model_name":"mlp","inputs":[{"name":"x","shape":[1,784],"datatype":"FP64","data":[]}]}"#,
             .string("type"), "input 'x' must be float32, got float64"),
            (#"{"id":"bytes","model_name":"mlp","inputs":[{"name":"x","shape":[1,784],"datatype":"BYTES","data":[]}]}"#,
             .string("bytes"), "input 'x' must be float32, got string"),
            (#"{"id":"bf16","model_name":"mlp","inputs":[{"name":"x","shape":[1,784],"datatype":"BF16","data":[]}]}"#,
             .string("bf16"), "input 'x' has datatype 'BF16'; supported:"),
            (#"{"id":"count","model_name":"reshape","inputs":[{"name":"x","shape":[6],"datatype":"FP32","data":[1,2,3]},{"name":"shape","shape":[2],"datatype":"INT64","data":[2,3]}]}"#,
             .string("count"), "input 'x' has 3 values, shape [6] needs 6"),
            (#"{"id":"overflow","model_name":"reshape","inputs":[{"name":"x","shape":[4294967296,4294967296,4294967296],"datatype":"FP32","data":[]}]}"#,
             .string("overflow"), "input 'x' has shape [4294967296, 4294967296, 4294967296], whose element count overflows"),
            (#"{"id":"limit","model_name":"mlp","inputs":[{"name":"x","shape":[200,784],"datatype":"FP32","data":[]}]}"#,
             .string("limit"), "input 'x' has shape [200, 784] with 156800 elements, over the server's limit of 100000 elements per tensor"),
            (#"{"id":"kernel","model_name":"reshape","inputs":[{"name":"x","shape":[6],"datatype":"FP32","data":\#(zeros6)},{"name":"shape","shape":[2],"datatype":"INT64","data":[4,4]}]}"#,
             .string("kernel"), "(Reshape)"),
            (#"{"id":"value","model_name":"reshape","inputs":[{"name":"x","shape":[6],"datatype":"FP32","data":[1,2,3,4,5,true]},{"name":"shape","shape":[2],"datatype":"INT64","data":[2,3]}]}"#,
             .string("value"), "input 'x' value 5 is true, not a number"),
            ("{\"id\":\"utf8\",\"model_name\":\"m\u{FFFD}\"}", .string("utf8"), "no model named"),
        ]
        var lines: [String] = []
        for (i, (line, _, _)) in bad.enumerated() {
            lines.append(line)
            lines.append(#"{"id":"ok\#(i)","model_name":"reshape","inputs":[{"name":"x","shape":[6],"datatype":"FP32","data":\#(zeros6)},{"name":"shape","shape":[2],"datatype":"INT64","data":[3,2]}]}"#)
        }
        lines.insert("\u{01}\u{7F}", at: 0)  // control bytes: not JSON either
        let r = try serve([mlpPath, reshapePath, "--max-line-bytes", "4096", "--max-elements", "100000"], lines)
        #expect(r.status == 0)
        try #require(r.answers.count == bad.count * 2 + 1)
        #expect(r.answers[0]["error"] != nil && r.answers[0]["id"] == .null)
        for (i, (_, id, message)) in bad.enumerated() {
            let answer = r.answers[1 + 2 * i], next = r.answers[2 + 2 * i]
            #expect(answer["id"] == id, "\(message)")
            guard case .string(let error)? = answer["error"] else { Issue.record("no error: \(answer)"); continue }
            #expect(error.contains(message), "\(error)")
            #expect(next["id"] == .string("ok\(i)"))
            #expect(next["outputs"] == (try parseJSON(#"[{"name":"y","shape":[3,2],"datatype":"FP32","data":[1.0,2.0,3.0,4.0,5.0,6.0]}]"#)))
        }
        #expect(r.stderr.contains("(id \"kernel\"): while running node 'reshape'"))
    }

    @Test func endOfInputAnswersEverythingThenExitsZero() throws {
        let lines = (0..<200).map { mlpRequest(id: "\($0)", rows: 1 + $0 % 5, seed: $0) }
        let r = try serve([mlpPath, "--threads", "2"], lines)
        #expect(r.status == 0)
        #expect(r.answers.map { $0["id"] } == (0..<200).map { .string("\($0)") })
        #expect(r.stderr.hasSuffix("dlserve: answered 200 requests\n"), "\(r.stderr)")
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func signalStopsReadingFinishesQueuedWorkAndExitsZero(_ sig: Int32) throws {
        let p = try ServeProcess([cnnPath])
        let cnnInput = (0..<3072).map { JSON.float(Float($0 % 17) / 17).serialized() }.joined(separator: ",")
        let lines = (0..<400).map { #"{"id":\#($0),"inputs":[{"name":"x","shape":[1,3,32,32],"datatype":"FP32","data":[\#(cnnInput)]}]}"# }
        p.send(lines.map { $0 + "\n" }.joined())  // stdin stays open
        let first = p.readLine()
        #expect(first?.hasPrefix(#"{"id":0,"model_name":"cnn","outputs":"#) == true)
        p.signal(sig)
        let rest = p.readAll()
        let (status, err) = p.wait()
        #expect(status == 0, "\(err)")
        let answers = [first ?? ""] + rest
        // Every answer is whole and in order, and as many as the server says it read.
        for (i, line) in answers.enumerated() {
            let a = try parseJSON(line)
            #expect(a["id"] == .int(i) && a["outputs"] != nil)
        }
        #expect(err.contains("received \(sig == SIGINT ? "SIGINT" : "SIGTERM"); answering the requests already read, then exiting"))
        #expect(err.hasSuffix("dlserve: answered \(answers.count) requests\n"), "\(err)")
        #expect(answers.count < 400)
    }

    @Test func signalWhileIdleExitsZeroAtOnce() throws {
        let p = try ServeProcess([mlpPath])
        p.send(#"{"id":"r","method":"ready"}"# + "\n")
        #expect(p.readLine() == #"{"id":"r","ready":true}"#)
        p.signal(SIGTERM)
        #expect(p.readLine() == nil)
        let (status, err) = p.wait()
        #expect(status == 0)
        #expect(err.hasSuffix("dlserve: answered 1 requests\n"), "\(err)")
    }

    @Test func closedOutputStopsTheServerWithExitOne() throws {
        let p = try ServeProcess([mlpPath])
        p.send(#"{"id":"r","method":"ready"}"# + "\n")
        #expect(p.readLine() == #"{"id":"r","ready":true}"#)
        p.closeOutput()
        p.send((0..<50).map { mlpRequest(id: "\($0)") + "\n" }.joined(), close: true)
        let (status, err) = p.wait()
        #expect(status == 1)
        #expect(err.contains("standard output closed; stopped after"), "\(err)")
    }
}
