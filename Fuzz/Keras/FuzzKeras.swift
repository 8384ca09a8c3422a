import DLGraph
import DLKeras
import DLSupport
import DLTensor
import FuzzSupport

/// libFuzzer entry for the Keras reader. The first byte picks the path:
/// - even: the rest is a file (HDF5, or a `.keras` zip whose model.weights.h5 libhdf5 opens from
///   memory) read by `KerasFile(path:)`, then its model_config turned into a graph;
/// - odd: the rest is a model_config JSON document turned into a graph (no HDF5 involved).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKeras(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let rest = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        guard let path = FuzzSupport.scratchFile(rest, suffix: ".h5") else { return 0 }
        guard let file = try? KerasFile(path: path) else { return 0 }
        for layer in file.layers { for (_, t) in layer.weights { t.withUnsafeBytes { b in _ = b.last } } }
        if file.config != nil { _ = try? KerasImporter.graph(from: file) }
    } else {
        guard let config = try? JSONParser.parse(rest) else { return 0 }
        let file = KerasFile(config: config, path: "fuzz.json")
        _ = try? KerasImporter.graph(from: file)
    }
    return 0
}
