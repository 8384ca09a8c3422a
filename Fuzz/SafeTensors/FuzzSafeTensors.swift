import DLSafeTensors
import FuzzSupport

/// libFuzzer entry: a .safetensors file -> header parse -> every tensor materialised.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".safetensors") else { return 0 }
    guard let file = try? SafeTensorsFile(path: path) else { return 0 }
    if let all = try? file.tensors() {
        for (_, t) in all { t.withUnsafeBytes { b in _ = b.last } }
    }
    return 0
}
