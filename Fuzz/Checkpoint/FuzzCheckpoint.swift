import DLCheckpoint
import DLKit
import FuzzSupport

/// libFuzzer entry: a DLKit .ckpt (safetensors with the graph in its metadata) -> checkpoint
/// reader -> executor planning.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".ckpt") else { return 0 }
    guard let ckpt = try? Checkpoint(contentsOf: path) else { return 0 }
    _ = try? Model(graph: ckpt.graph, name: "fuzz")
    return 0
}
