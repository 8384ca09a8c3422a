import DLTensorFlow
import Foundation
import FuzzSupport

/// libFuzzer entry: a TF.js model. The first 4 bytes (little-endian) give the length of
/// `model.json`; the rest is `group1-shard1of1.bin` beside it. The JSON is parsed, the weights
/// decoded, and a graph-model translated.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTFJS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 4 else { return 0 }
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let n = min(Int(all[0]) | Int(all[1]) << 8 | Int(all[2]) << 16 | Int(all[3]) << 24, size - 4)
    guard let json = FuzzSupport.scratchFile(UnsafeRawBufferPointer(rebasing: all[4..<(4 + n)]), suffix: ".tfjs.json"),
          let shard = FuzzSupport.scratchFile(UnsafeRawBufferPointer(rebasing: all[(4 + n)...]), suffix: ".tfjs.bin") else { return 0 }
    let dir = json + ".d"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (from, to) in [(json, dir + "/model.json"), (shard, dir + "/group1-shard1of1.bin")] {
        _ = try? FileManager.default.removeItem(atPath: to)
        guard (try? FileManager.default.moveItem(atPath: from, toPath: to)) != nil else { return 0 }
    }
    guard let model = try? TFJSModel(path: dir + "/model.json") else { return 0 }
    if model.kind == .graphModel { _ = try? model.graph() }
    return 0
}
