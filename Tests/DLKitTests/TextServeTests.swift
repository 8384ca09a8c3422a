import DLKit
import DLServe
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// `dlserve` on Hugging Face folders: BYTES text inputs and generate requests (the comparisons
/// with transformers are in scripts/hf_serve_checks.py; these pin the protocol).
struct TextServeTests {
    static func textServer(_ names: String...) throws -> InferenceServer {
        var models: [Model] = [], text: [TextSupport?] = []
        for n in names {
            let path = TestPackage.fixture("hf/\(n)")
            models.append(try Model(contentsOf: URL(fileURLWithPath: path)))
            text.append(try TextSupport.load(path: path))
        }
        return try InferenceServer(models: models, text: text)
    }

    static func rows(_ answer: JSON, _ output: String) -> JSON? {
        guard case .array(let outs)? = answer["outputs"] else { return nil }
        return outs.first { $0["name"] == .string(output) }?["shape"]
    }

    @Test func bytesTextIsTokenizedAndPaddedToTheLongest() throws {
        let server = try Self.textServer("bert")
        // "Hello world!" is 10 tokens with [CLS] and [SEP]
        let flat = try parse(server.handle(line: #"{"id":1,"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["Hello world!","Café naïve"]}]}"#))
        #expect(Self.rows(flat, "last_hidden_state") == .array([.int(2), .int(10), .int(32)]), "\(flat)")
        // the same as the token inputs the tokenizers library gives (padding id 0, masked)
        let ids = #"{"id":1,"inputs":[{"name":"input_ids","shape":[2,10],"datatype":"INT64","data":[2,28,216,127,109,287,127,118,5,3,2,241,108,111,265,199,3,0,0,0]},"#
            + #"{"name":"attention_mask","shape":[2,10],"datatype":"INT64","data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0]},"#
            + #"{"name":"token_type_ids","shape":[2,10],"datatype":"INT64","data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}"#
        #expect(try parse(server.handle(line: ids)) == flat)
    }

    @Test func binaryBytesAreLengthPrefixed() throws {
        let server = try Self.textServer("bert")
        var data: [UInt8] = []
        for s in ["Hello world!", "Café naïve"] {
            withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian) { data += $0 }
            data += Array(s.utf8)
        }
        let line = #"{"id":1,"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":\#(data.count)}}]}"#
        func answer(_ bytes: [UInt8]) throws -> JSON {
            var l = Array(line.utf8)
            l.append(0)
            let job = l.withUnsafeBytes { lb in bytes.withUnsafeBytes { server.prepare(line: UnsafeRawBufferPointer(rebasing: lb.dropLast()), binary: $0) } }
            var out: [UInt8] = []
            server.encode(server.run([job])[0], into: &out)
            return try parse(String(decoding: out, as: UTF8.self))
        }
        let json = try parse(server.handle(line: #"{"id":1,"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["Hello world!","Café naïve"]}]}"#))
        #expect(try answer(data) == json)
        var lying = data
        lying[0] = 200
        let e = try answer(lying)
        #expect(e["error"]?.stringValue?.contains("element 0 declares 200 bytes") == true, "\(e)")
    }

    @Test func badTextRequestsAreRefused() throws {
        let server = try Self.textServer("bert")
        for (line, words) in [
            (#"{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":[3]}]}"#, "a BYTES element (a string)"),
            (#"{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","parameters":{"data_encoding":"base64"},"data":"aGk="}]}"#, "not base64"),
            (#"{"inputs":[{"name":"text","shape":[1],"datatype":"FP32","data":[1]}]}"#, "its datatype is BYTES"),
            (#"{"inputs":[{"name":"text","shape":[1,1],"datatype":"BYTES","data":["a"]}]}"#, "shape [N]"),
            (#"{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["a"]},{"name":"input_ids","shape":[1,1],"datatype":"INT64","data":[1]}]}"#, "not both"),
            (#"{"method":"generate","text_input":"hi"}"#, "does not generate"),
            (#"{"inputs":[{"name":"text","shape":[268435455],"datatype":"BYTES","data":["a"]}]}"#, "does not match shape"),
        ] {
            let a = try parse(server.handle(line: line))
            #expect(a["error"]?.stringValue?.contains(words) == true, "\(line) -> \(a)")
        }
    }

    @Test func generateGivesTransformersGreedyTokens() throws {
        let server = try Self.textServer("gpt2")
        let gen = try parseJSON(String(contentsOfFile: TestPackage.fixture("hf/gpt2/generate.json"), encoding: .utf8))
        let prompt = try #require(gen["prompt"]?.stringValue), want = try #require(gen["generated_ids"]?.arrayValue)
        let a = try parse(server.handle(line: #"{"id":"g","method":"generate","text_input":\#(JSON.string(prompt).serialized()),"parameters":{"max_tokens":\#(want.count)}}"#))
        #expect(a["token_ids"] == .array(want), "\(a)")
        #expect(a["text_output"] == gen["text"])
        #expect(a["id"] == .string("g"))
        for (params, words) in [(#"{"max_tokens":0}"#, "max_tokens"), (#"{"top_p":0}"#, "top_p"), (#"{"temprature":1}"#, "unknown generation parameter"),
                                (#"{"max_tokens":100000}"#, "max_tokens"), (#"{"max_tokens":60000}"#, "positions")] {
            let e = try parse(server.handle(line: #"{"method":"generate","text_input":"hi","parameters":\#(params)}"#))
            #expect(e["error"]?.stringValue?.contains(words) == true, "\(params) -> \(e)")
        }
    }
}
