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

/// `POST /v2/models/NAME/generate_stream` over a real socket: Triton's server-sent events, one per
/// new token, whose texts put together are the `generate` answer's.
struct GenerateStreamTests {
    /// One request on a new connection (`Connection: close`), read to the end: status line,
    /// headers (lowercased names) and the body with any chunked framing removed.
    static func post(port: Int, path: String, body: String) throws -> (status: String, headers: [String: String], body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        let request = Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
        try #require(request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } == request.count)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let head = parts[0].components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2 { headers[kv[0].lowercased()] = kv[1] }
        }
        var rest = parts.dropFirst().joined(separator: "\r\n\r\n")
        guard headers["transfer-encoding"] == "chunked" else { return (head[0], headers, rest) }
        var decoded = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let bytes = Array(rest[lineEnd.upperBound...].utf8)
            decoded += String(decoding: bytes[0..<size], as: UTF8.self)
            rest = String(decoding: bytes[(size + 2)...], as: UTF8.self)
        }
        return (head[0], headers, decoded)
    }

    /// The JSON of each `data:` event (events end at a blank line).
    static func events(_ body: String) throws -> [JSON] {
        try body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
            #expect(event.hasPrefix("data: "), "\(event)")
            return try parseJSON(String(event.dropFirst("data: ".count)))
        }
    }

    @Test(arguments: ["gpt2", "llama"]) func streamedTokensMakeTheGeneratedText(_ name: String) throws {
        let http = HTTPServer(server: try TextServeTests.textServer(name))
        defer { http.shutdown(timeout: 5) }
        let port = try http.start(host: "127.0.0.1", port: 0)
        let prompt = JSON.string("Café 日本語 😀 Hello world").serialized()
        let request = #"{"id":"s","text_input":\#(prompt),"parameters":{"max_tokens":12}}"#
        let plain = try Self.post(port: port, path: "/v2/models/\(name)/generate", body: request)
        let whole = try parseJSON(plain.body)
        let streamed = try Self.post(port: port, path: "/v2/models/\(name)/generate_stream", body: request)
        #expect(streamed.status == "HTTP/1.1 200 OK")
        #expect(streamed.headers["content-type"] == "text/event-stream; charset=utf-8")
        let events = try Self.events(streamed.body)
        #expect(events.count == whole["token_ids"]?.arrayValue?.count, "\(streamed.body)")
        #expect(events.allSatisfy { $0["id"] == .string("s") && $0["model_name"] == .string(name) && $0["token_ids"]?.arrayValue?.count == 1 })
        #expect(.array(events.flatMap { $0["token_ids"]?.arrayValue ?? [] }) == whole["token_ids"])
        #expect(.string(events.map { $0["text_output"]?.stringValue ?? "" }.joined()) == whole["text_output"])
    }

    @Test func refusalsAreJSONAndLateErrorsAreEvents() throws {
        let http = HTTPServer(server: try TextServeTests.textServer("gpt2", "bert"))
        defer { http.shutdown(timeout: 5) }
        let port = try http.start(host: "127.0.0.1", port: 0)
        // refused before generating: a plain 400 with the JSON error
        for (path, body, words) in [("/v2/models/gpt2/generate_stream", #"{"parameters":{"max_tokens":3}}"#, "text_input"),
                                    ("/v2/models/gpt2/generate_stream", #"{"text_input":"hi","parameters":{"top_p":2}}"#, "top_p"),
                                    ("/v2/models/bert/generate_stream", #"{"text_input":"hi"}"#, "does not generate"),
                                    ("/v2/models/gpt2/generate", #"{"text_input":"hi","stream":true}"#, "generate_stream")] {
            let r = try Self.post(port: port, path: path, body: body)
            #expect(r.status == "HTTP/1.1 400 Bad Request", "\(r)")
            #expect(try parseJSON(r.body)["error"]?.stringValue?.contains(words) == true, "\(r.body)")
        }
        // failing once the stream has started: the error is the last event
        let r = try Self.post(port: port, path: "/v2/models/gpt2/generate_stream", body: #"{"id":7,"text_input":"hi","parameters":{"max_tokens":60000}}"#)
        #expect(r.status == "HTTP/1.1 200 OK")
        let events = try Self.events(r.body)
        #expect(events.count == 1 && events[0]["id"] == .int(7) && events[0]["error"]?.stringValue?.contains("positions") == true, "\(r.body)")
    }
}
