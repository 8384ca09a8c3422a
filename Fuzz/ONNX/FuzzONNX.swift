import DLGraph
import DLKit
import DLONNX

/// libFuzzer entry: ONNX bytes -> protobuf-c -> IR builder -> validation -> executor planning
/// (shape inference). Every input must give a graph or an `ONNXError`, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // External data is looked up in a folder that does not exist, so references to it fail.
    guard let graph = try? ONNXReader.read(bytes: bytes, path: "fuzz.onnx", directory: "/nonexistent-dlkit-fuzz") else { return 0 }
    _ = try? Model(graph: graph, name: "fuzz")
    return 0
}
