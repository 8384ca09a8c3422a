import DLKit
import DLServe
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// A server over the `ops` fixture (inputs x [batch,4,6]; outputs y, gate).
let opsServer: InferenceServer = server("models/ops.onnx")

/// A server over fixture models; a broken checkout (a fixture missing) fails every test using it.
func server(_ fixtures: String..., limits: ServeLimits = ServeLimits()) -> InferenceServer {
    let models = fixtures.compactMap { try? Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture($0))) }
    do { return try InferenceServer(models: models, limits: limits) } catch {
        fatalError("fixtures \(fixtures) do not load: \(error)")  // test setup only
    }
}

func parse(_ line: String) throws -> JSON { try parseJSON(line) }

struct InferenceServerTests {
    func request(_ x: Tensor, id: String = "r1", extra: String = "") -> String {
        let data = x.scalars(as: Float.self).map { JSON.float($0).serialized() }.joined(separator: ",")
        return #"{"id":"\#(id)","inputs":[{"name":"x","shape":[\#(x.shape.map(String.init).joined(separator: ","))],"datatype":"FP32","data":[\#(data)]}]\#(extra)}"#
    }

    @Test func inferAnswersWithReferenceOutputsInOrder() throws {
        let io = try referenceIO("ops")
        let x = try #require(io.inputs["x"])
        let answer = try parse(opsServer.handle(line: request(x)))
        #expect(answer["id"] == .string("r1"))
        #expect(answer["model_name"] == .string("ops"))
        guard case .array(let outs)? = answer["outputs"] else { Issue.record("no outputs"); return }
        #expect(outs.map { $0["name"] } == [.string("y"), .string("gate")])
        for o in outs {
            guard case .string(let name)? = o["name"], case .array(let data)? = o["data"],
                  let want = io.outputs[name] else { Issue.record("bad output"); continue }
            let got = data.compactMap { if case .number(let s) = $0 { Double(s) } else { nil } }
            #expect(allClose(got, want.doubles()), "\(name)")
            #expect(o["shape"] == .array(want.shape.map { .int($0) }))
        }
    }

    @Test func nestedDataAndOutputSelection() throws {
        let x = Tensor(zeros: .float32, shape: [1, 4, 6])
        let nested = "[[" + (0..<4).map { _ in "[0,0,0,0,0,0]" }.joined(separator: ",") + "]]"
        let line = #"{"id":"n","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":\#(nested)}],"outputs":[{"name":"gate"}]}"#
        let answer = try parse(opsServer.handle(line: line))
        guard case .array(let outs)? = answer["outputs"] else { Issue.record("\(answer)"); return }
        #expect(outs.count == 1 && outs[0]["name"] == .string("gate"))
        _ = x
    }

    @Test func base64DataInAndOut() throws {
        let io = try referenceIO("ops")
        let x = try #require(io.inputs["x"])
        let b64 = x.withUnsafeBytes { Data($0).base64EncodedString() }
        let line = #"{"id":"b","parameters":{"data_encoding":"base64"},"inputs":[{"name":"x","shape":[2,4,6],"datatype":"FP32","parameters":{"data_encoding":"base64"},"data":"\#(b64)"}]}"#
        let answer = try parse(opsServer.handle(line: line))
        guard case .array(let outs)? = answer["outputs"], case .string(let data)? = outs[0]["data"],
              let bytes = Data(base64Encoded: data) else { Issue.record("\(answer)"); return }
        let y = try bytes.withUnsafeBytes { b in try Tensor(dtype: .float32, shape: [2, 96], bytes: b) }
        #expect(allClose(y.doubles(), try #require(io.outputs["y"]).doubles()))
    }

    @Test func metadataUsesMinusOneForDynamicDims() throws {
        let answer = try parse(opsServer.handle(line: #"{"id":"m","method":"metadata"}"#))
        #expect(answer["name"] == .string("ops"))
        guard case .array(let inputs)? = answer["inputs"] else { Issue.record("\(answer)"); return }
        #expect(inputs[0]["shape"] == .array([.int(-1), .int(4), .int(6)]))
        #expect(inputs[0]["datatype"] == .string("FP32"))
    }

    @Test(arguments: [
        ("{", "the request is not valid JSON"),
        (#"[1,2]"#, "the request must be a JSON object"),
        (#"{"id":"e"}"#, #"an infer request needs an "inputs" array"#),
        (#"{"id":"e","method":"explode"}"#, "unknown method 'explode'"),
        (#"{"id":"e","model_name":"other","inputs":[]}"#, "no model named 'other'"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[1]}]}"#, "input 'x' has 1 values, shape [1, 4, 6] needs 24"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"STRINGY","data":[1]}]}"#, "input 'x' has datatype 'STRINGY'"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[]}]}"#, "input 'x' has shape entry -1"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[99999999,99999999,99999999],"datatype":"FP32","data":[]}]}"#, "input 'x' has shape [99999999, 99999999, 99999999], whose element count overflows"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":["one"]}]}"#, #"input 'x' value 0 is "one", not a number"#),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"INT8","data":[300]}]}"#, "input 'x' must be float32, got int8"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[[[1,2]]]}]}"#, "input 'x' data has 2 entries at depth 3, shape [1, 4, 6] needs 6"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[[1,2]]}]}"#, "input 'x' data has a value at depth 2, shape [1, 4, 6] puts values at depth 3"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[1,[2]]}]}"#, "mixes numbers and arrays"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","parameters":{"data_encoding":"base64"},"data":"\#(String(repeating: "A", count: 127))*"}]}"#, "base64 data has an invalid character at position 127"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","parameters":{"data_encoding":"base64"},"data":"AAA="}]}"#, "input 'x' base64 data decodes to 2 bytes, its shape needs 96 bytes of FP32"),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","parameters":{"data_encoding":"hex"},"data":"00"}]}"#, #"data_encoding "hex""#),
        (#"{"id":"e","id":"f","inputs":[]}"#, #"the member "id" twice"#),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[1,2}]}"#, "not valid JSON"),
        (#"{"id":"e","inputs":{}}"#, #""inputs" is an object, not an array"#),
        (#"{"id":"e","outputs":[{"name":"nope"}],"inputs":[]}"#, "input 'x' is missing"),
        (#"{"id":"e","method":"metadata","model_name":7}"#, #""model_name" must be a string"#),
        (#"{"id":"e","inputs":[{"name":"x","shape":[1,4,7],"datatype":"FP32","data":[\#((0..<28).map { _ in "0" }.joined(separator: ","))]}]}"#, "input 'x' has shape [1, 4, 7], expected [batch,4,6]"),
        (#"{"id":"e","inputs":[{"name":"z","shape":[1],"datatype":"FP32","data":[0]}]}"#, "'z' is not an input of the model"),
        (#"{"id":"e","inputs":[]}"#, "input 'x' is missing"),
    ])
    func badRequestsGetAnErrorLine(_ line: String, _ message: String) throws {
        let answer = try parse(opsServer.handle(line: line))
        guard case .string(let error)? = answer["error"] else { Issue.record("no error in \(answer)"); return }
        #expect(error.contains(message), "\(error)")
        #expect(answer["outputs"] == nil)
        if line.hasPrefix(#"{"id":"e""#) { #expect(answer["id"] == .string("e")) }
    }

    @Test func idIsKeptWhenTheRestOfTheLineIsBroken() throws {
        let answer = try parse(opsServer.handle(line: #"{"id":"early","inputs":[{"name":"x","#))
        #expect(answer["id"] == .string("early"))
        let deep = #"{"id":"deep","x":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        let d = try parse(opsServer.handle(line: deep))
        #expect(d["id"] == .string("deep"))
        #expect(d["error"] == .string("the request nests deeper than 64 levels (at byte 80)"))
    }

    @Test func elementLimitIsConfigurable() throws {
        let small = server("models/ops.onnx", limits: ServeLimits(maxElements: 10))
        let zeros = (0..<24).map { _ in "0" }.joined(separator: ",")
        let answer = try parse(small.handle(line: #"{"id":1,"inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":[\#(zeros)]}]}"#))
        #expect(answer["error"] == .string("input 'x' has shape [1, 4, 6] with 24 elements, over the server's limit of 10 elements per tensor"))
    }

    @Test func duplicateModelNamesAreRefused() throws {
        let m = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("models/mlp.onnx")))
        do {
            _ = try InferenceServer(models: [m, m])
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("two models are named 'mlp'"))
        }
    }

    @Test func nonFiniteFloatsTravelAsStrings() throws {
        let line = #"{"id":"n","inputs":[{"name":"x","shape":[1,4,6],"datatype":"FP32","data":["NaN","Infinity","-Infinity",\#((0..<21).map { _ in "0" }.joined(separator: ","))]}]}"#
        let answer = try parse(opsServer.handle(line: line))
        #expect(answer["error"] == nil, "\(answer)")
    }
}
