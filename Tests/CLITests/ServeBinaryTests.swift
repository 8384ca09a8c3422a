import DLKit
import DLSupport
import DLTestSupport
import Foundation
import Testing

/// Binary tensor data on stdio (formats/serve-protocol.md, "Binary tensor data"): the framing, and
/// what a request with wrong sizes does to the stream.
struct ServeBinaryTests {
    /// The MLP input as little-endian float32 bytes.
    static let x: [Float] = (0..<784).map { Float(($0 * 31) % 97) / 97 - 0.5 }
    static var xBytes: [UInt8] { x.withUnsafeBytes { Array($0) } }

    /// A request line for `x` [1,784] declaring `size` bytes of binary data.
    static func line(id: String, size: Int, binaryOut: Bool = true) -> [UInt8] {
        let out = binaryOut ? #","outputs":[{"name":"y","parameters":{"binary_data":true}}]"# : ""
        return Array(#"{"id":"\#(id)","inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","parameters":{"binary_data_size":\#(size)}}]\#(out)}"#.utf8) + [0x0A]
    }

    /// The JSON answer of the same input, for comparison.
    static func jsonAnswer() throws -> [Float] {
        let data = x.map { JSON.float($0).serialized() }.joined(separator: ",")
        let r = try serve([mlpPath], [#"{"id":"j","inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":[\#(data)]}]}"#])
        guard case .array(let outs)? = r.answers.first?["outputs"], case .array(let ys)? = outs.first?["data"] else {
            throw ServeTestFailure("no JSON answer: \(r.answers)")
        }
        return ys.compactMap { if case .number(let s) = $0 { Float(s) } else { nil } }
    }

    /// Reads an answer line and, when it has a binary `y`, its float32 values.
    static func answer(_ p: ServeProcess) throws -> (JSON, [Float]?) {
        guard let l = p.readLine() else { throw ServeTestFailure("no answer") }
        let a = try parseJSON(l)
        guard case .array(let outs)? = a["outputs"], case .object? = outs.first?["parameters"],
              case .number(let n)? = outs.first?["parameters"]?["binary_data_size"], let size = Int(n) else { return (a, nil) }
        guard let bytes = p.readBytes(size) else { throw ServeTestFailure("binary output cut short") }
        return (a, bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) })
    }

    @Test func binaryInAndOutEqualsJSON() throws {
        let want = try Self.jsonAnswer()
        let p = try ServeProcess([mlpPath])
        p.send(bytes: Self.line(id: "b", size: 3136) + Self.xBytes + Self.line(id: "b2", size: 3136, binaryOut: false) + Self.xBytes, close: true)
        let (a, y) = try Self.answer(p)
        #expect(a["id"] == .string("b"))
        #expect(y == want, "binary output equals the JSON answer bit for bit")
        let (a2, _) = try Self.answer(p)
        guard case .array(let outs)? = a2["outputs"], case .array(let ys)? = outs.first?["data"] else {
            Issue.record("\(a2)"); return
        }
        #expect(ys.compactMap { if case .number(let s) = $0 { Float(s) } else { nil } } == want)
        #expect(p.wait().0 == 0)
    }

    @Test func wrongSizesAreAnsweredAndTheStreamStaysInStep() throws {
        let want = try Self.jsonAnswer()
        let p = try ServeProcess([mlpPath, "--max-binary-bytes", "4096"])
        var bytes: [UInt8] = []
        bytes += Self.line(id: "short", size: 100) + [UInt8](repeating: 0x31, count: 100)  // lies about the shape
        bytes += Self.line(id: "ok1", size: 3136) + Self.xBytes
        bytes += Self.line(id: "huge", size: 10_000) + [UInt8](repeating: 0x0A, count: 10_000)  // over the limit, skipped
        bytes += Self.line(id: "ok2", size: 3136) + Self.xBytes
        bytes += Self.line(id: "cut", size: 3136) + Self.xBytes.prefix(1000)  // truncated by the end of input
        p.send(bytes: bytes, close: true)
        let (short, _) = try Self.answer(p)
        #expect(short["id"] == .string("short"))
        #expect(short["error"].map { "\($0)".contains("binary_data_size 100") } == true, "\(short)")
        let (ok1, y1) = try Self.answer(p)
        #expect(ok1["id"] == .string("ok1") && y1 == want)
        let (huge, _) = try Self.answer(p)
        #expect(huge["id"] == .string("huge"))
        #expect(huge["error"]?.stringValue?.contains("over the server's binary-data limit") == true, "\(huge)")
        let (ok2, y2) = try Self.answer(p)
        #expect(ok2["id"] == .string("ok2") && y2 == want)
        let (cut, _) = try Self.answer(p)
        #expect(cut["id"] == .string("cut"))
        #expect(cut["error"].map { "\($0)".contains("ended after 1000 of the 3136 bytes") } == true, "\(cut)")
        #expect(p.readLine() == nil)
        #expect(p.wait().0 == 0)
    }

    @Test func unreadableSizesCloseTheStreamCleanly() throws {
        for bad in [#""binary_data_size":-4"#, #""binary_data_size":"8""#, #""binary_data_size":1.5"#, #""binary_data_size":99999999999999999999999"#] {
            let p = try ServeProcess([mlpPath])
            var bytes = Self.line(id: "ok", size: 3136) + Self.xBytes
            bytes += Array(#"{"id":"bad","inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","parameters":{\#(bad)}}]}"#.utf8) + [0x0A]
            bytes += Self.line(id: "never", size: 3136) + Self.xBytes
            p.send(bytes: bytes, close: true)
            let (ok, y) = try Self.answer(p)
            #expect(ok["id"] == .string("ok") && y?.count == 10)
            let (b, _) = try Self.answer(p)
            #expect(b["id"] == .string("bad"))
            #expect(b["error"].map { "\($0)".contains("framing of the input is lost") } == true, "\(bad): \(b)")
            #expect(p.readLine() == nil, "nothing is read after the framing is lost")
            let (status, err) = p.wait()
            #expect(status == 1, "\(bad): \(err)")
        }
        // Not JSON, but mentions binary_data_size: the same.
        let p = try ServeProcess([mlpPath])
        p.send(bytes: Array(#"{"id":"x","inputs":[{"parameters":{"binary_data_size":8}}"#.utf8) + [0x0A] + [UInt8](repeating: 0x41, count: 8), close: true)
        let (b, _) = try Self.answer(p)
        #expect(b["error"].map { "\($0)".contains("framing of the input is lost") } == true, "\(b)")
        #expect(p.wait().0 == 1)
    }
}

struct ServeTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
