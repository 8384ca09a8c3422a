import DLTensorFlow
import Foundation
import FuzzSupport

/// libFuzzer entry: the bytes as `saved_model.pb` of a SavedModel folder without variables ->
/// the GraphDef path: protobuf decode, signature, function inlining, op translation, verification.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSavedModel(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let file = FuzzSupport.scratchFile(UnsafeRawBufferPointer(start: data, count: size), suffix: ".savedmodel.pb") else { return 0 }
    let dir = file + ".d"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let pb = dir + "/saved_model.pb"
    _ = try? FileManager.default.removeItem(atPath: pb)
    guard (try? FileManager.default.moveItem(atPath: file, toPath: pb)) != nil else { return 0 }
    for signature in (try? SavedModelReader.signatures(path: dir)) ?? [] {
        _ = try? SavedModelReader.read(path: dir, signature: signature)
    }
    return 0
}
