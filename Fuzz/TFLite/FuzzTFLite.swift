import DLGraph
import DLTFLite
import FuzzSupport

/// libFuzzer entry: .tflite bytes -> FlatBuffer structure and schema checks -> IR graph -> types
/// inferred -> the allocation budget. Every offset, vtable and vector must be bounded: errors,
/// never crashes. The import and the graph's peak are held to 64 MiB, as fuzz-onnx-attributes'
/// plans are: a few bytes of sparsity metadata can describe a dense weight of gigabytes. And to
/// 4096 translated operators: nested WHILEs inlining their subgraphs up to the importer's 65536
/// took 18 s of this instrumented build on one 4 KB input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFLite(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let budget = 1 << 26
    guard let data, let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".tflite") else { return 0 }
    guard let model = try? TFLiteModel(path: path), let graph = try? TFLiteImporter.graph(from: model, allocationBudget: budget, operatorBudget: 1 << 12) else { return 0 }
    _ = try? graph.inferTypes()
    _ = try? graph.checkAllocation(budget: budget)
    for (_, t) in graph.initializers { t.withUnsafeBytes { b in _ = b.last } }
    return 0
}
