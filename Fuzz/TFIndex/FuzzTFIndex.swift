import DLTensorFlow
import FuzzSupport

/// libFuzzer entry: a TensorFlow checkpoint. The first 4 bytes (little-endian) give the length
/// of the `.index` table; the rest is the one data shard. Every tensor is read (and checksummed).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFIndex(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 4 else { return 0 }
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let n = min(Int(all[0]) | Int(all[1]) << 8 | Int(all[2]) << 16 | Int(all[3]) << 24, size - 4)
    let index = UnsafeRawBufferPointer(rebasing: all[4..<(4 + n)])
    let shard = UnsafeRawBufferPointer(rebasing: all[(4 + n)...])
    guard let path = FuzzSupport.scratchFile(index, suffix: ".ckpt.index"),
          FuzzSupport.scratchFile(shard, suffix: ".ckpt.data-00000-of-00001") != nil else { return 0 }
    guard let bundle = try? TensorBundle(path: path) else { return 0 }
    for e in bundle.entries {
        if e.dtype == .string { _ = try? bundle.strings(e) } else if let t = try? bundle.tensor(e) { t.withUnsafeBytes { b in _ = b.last } }
    }
    return 0
}
