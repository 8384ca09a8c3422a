import DLKit
import DLServe
import DLSupport
import DLTensor
import Foundation

/// The model requests are answered with: the MLP fixture (path from DLKIT_FUZZ_MODEL, else the
/// repository's fixtures/models/mlp.onnx found from the working directory).
nonisolated(unsafe) private var server: InferenceServer? = {
    let path = ProcessInfo.processInfo.environment["DLKIT_FUZZ_MODEL"] ?? "fixtures/models/mlp.onnx"
    do {
        let model = try Model(contentsOf: URL(fileURLWithPath: path))
        return try InferenceServer(models: [model], limits: ServeLimits(maxElements: 1 << 16))
    } catch {
        FileHandle.standardError.write("fuzz-serve: cannot load \(path): \(error)\n".data(using: .utf8)!)
        exit(2)
    }
}()

/// A Hugging Face folder with its tokenizer (BYTES `text` inputs, path from
/// DLKIT_FUZZ_TEXT_MODEL, else fixtures/hf/bert); nil when it does not load.
nonisolated(unsafe) private var textServer: InferenceServer? = {
    let path = ProcessInfo.processInfo.environment["DLKIT_FUZZ_TEXT_MODEL"] ?? "fixtures/hf/bert"
    guard let model = try? Model(contentsOf: URL(fileURLWithPath: path)), let text = try? TextSupport.load(path: path) else {
        FileHandle.standardError.write("fuzz-serve: no text model at \(path); BYTES text requests are not fuzzed\n".data(using: .utf8)!)
        return nil
    }
    return try? InferenceServer(models: [model], limits: ServeLimits(maxElements: 1 << 16), text: [text])
}()

/// libFuzzer entry: one dlserve request line -> scanner -> tensor decoder -> run -> answer, for
/// the MLP and for the text model. Also feeds the bytes to the strict JSON parser.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServe(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let server else { return 0 }
    // The server reads lines: cut at the first newline and add the terminator it may look at.
    var line = Array(UnsafeBufferPointer(start: data, count: size))
    if let nl = line.firstIndex(of: 0x0A) { line.removeSubrange(nl...) }
    line.append(0x0A)
    line.withUnsafeBytes { b in
        let body = UnsafeRawBufferPointer(rebasing: b.dropLast())
        _ = try? JSONParser.parse(body)
        for server in [server, textServer].compactMap({ $0 }) {
            let job = server.prepare(line: body)
            var out: [UInt8] = []
            for o in server.run([job]) { server.encode(o, into: &out) }
        }
    }
    return 0
}
