import DLKit
import DLServe
import Foundation
import NIOCore
import NIOEmbedded

/// The HTTP server over the fixture model (DLKIT_FUZZ_MODEL, else fixtures/models/mlp.onnx), with
/// no runner threads: each request runs on the fuzzing thread, inside the embedded event loop.
nonisolated(unsafe) private var http: HTTPServer? = {
    let path = ProcessInfo.processInfo.environment["DLKIT_FUZZ_MODEL"] ?? "fixtures/models/mlp.onnx"
    do {
        let model = try Model(contentsOf: URL(fileURLWithPath: path))
        let server = try InferenceServer(models: [model], limits: ServeLimits(maxElements: 1 << 16))
        return HTTPServer(server: server, limits: HTTPLimits(maxBodyBytes: 1 << 16, maxHeaderBytes: 4096), threads: 0, eventLoops: 1)
    } catch {
        FileHandle.standardError.write(Data("fuzz-serve-http: cannot load \(path): \(error)\n".utf8))
        exit(2)
    }
}()

/// libFuzzer entry: the bytes a client sends on one connection (any number of pipelined
/// requests, malformed or not) -> NIO's HTTP/1 parser -> routing, limits, inference -> responses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServeHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let http else { return 0 }
    let channel = EmbeddedChannel()
    do {
        try http.configure(channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        let bytes = channel.allocator.buffer(bytes: UnsafeRawBufferPointer(start: data, count: size))
        try channel.writeInbound(bytes)
    } catch {
        // Parser errors close the channel: expected for malformed input.
    }
    channel.embeddedEventLoop.run()
    while (try? channel.readOutbound(as: IOData.self)) != nil {}
    _ = try? channel.finish()
    return 0
}
