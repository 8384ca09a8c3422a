import DLTorch
import FuzzSupport

/// libFuzzer entry: PyTorch zip or legacy pickle -> zip index / restricted unpickler -> every
/// tensor reference resolved and read (inflating stored entries when compressed).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let path = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".pt") else { return 0 }
    guard let file = try? TorchFile(path: path) else { return 0 }
    _ = try? file.outline()
    if let refs = try? file.tensorRefs() {
        for (name, ref) in refs {
            if let t = try? file.tensor(ref, name: name) { t.withUnsafeBytes { b in _ = b.last } }
        }
    }
    return 0
}
