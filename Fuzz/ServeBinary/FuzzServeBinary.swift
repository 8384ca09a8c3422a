import DLKit
import DLServe
import DLSupport
import Foundation
import FuzzSupport

/// The server over the fixture model (DLKIT_FUZZ_MODEL, else fixtures/models/mlp.onnx).
nonisolated(unsafe) private var server: InferenceServer? = {
    let path = ProcessInfo.processInfo.environment["DLKIT_FUZZ_MODEL"] ?? "fixtures/models/mlp.onnx"
    do {
        let model = try Model(contentsOf: URL(fileURLWithPath: path))
        return try InferenceServer(models: [model], limits: ServeLimits(maxElements: 1 << 16))
    } catch {
        FileHandle.standardError.write(Data("fuzz-serve-binary: cannot load \(path): \(error)\n".utf8))
        exit(2)
    }
}()

/// libFuzzer entry: a stdio input stream (request lines with binary tensor data after them) ->
/// LineReader -> framing (binary_data_size) -> decoding -> run -> answers with binary outputs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServeBinary(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let server,
          let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".stdio") else { return 0 }
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    let pipeline = ServePipeline(server: server, options: .init(threads: 1, maxBatch: 2), output: { _ in true })
    let reader = LineReader(fd: fd, maxLineBytes: 1 << 16, chunkSize: 64)
    _ = pipeline.read(from: reader, maxBinaryBytes: 1 << 14)
    _ = pipeline.finish()
    return 0
}
