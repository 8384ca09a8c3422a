import DLGraph
import DLTFLite
import FuzzSupport

/// libFuzzer entry: .tflite bytes -> FlatBuffer structure and schema checks -> IR graph -> types
/// inferred. Every offset, vtable and vector must be bounded: errors, never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFLite(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".tflite") else { return 0 }
    guard let model = try? TFLiteModel(path: path), let graph = try? TFLiteImporter.graph(from: model) else { return 0 }
    _ = try? graph.inferTypes()
    for (_, t) in graph.initializers { t.withUnsafeBytes { b in _ = b.last } }
    return 0
}
