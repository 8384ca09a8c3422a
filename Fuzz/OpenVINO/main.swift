import DLKit
import DLOpenVINO
import FuzzSupport

/// libFuzzer entry: bytes up to the first NUL are the IR `.xml`, the rest its `.bin`; both go
/// through the reader, every constant is touched, and the translated graph is planned.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOpenVINO(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let split = all.firstIndex(of: 0) ?? size
    let xml = UnsafeRawBufferPointer(rebasing: all[0..<split])
    let bin = UnsafeRawBufferPointer(rebasing: all[min(split + 1, size)..<size])
    guard let xmlPath = FuzzSupport.scratchFile(xml, suffix: ".xml"),
          FuzzSupport.scratchFile(bin, suffix: ".bin") != nil else { return 0 }
    guard let graph = try? OpenVINOReader.read(path: xmlPath) else { return 0 }
    for (_, t) in graph.initializers { t.withUnsafeBytes { b in _ = b.last } }
    _ = try? Model(graph: graph, name: "fuzz")
    return 0
}
