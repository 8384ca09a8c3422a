import DLGraph
import DLSupport
import DLTensor

/// Writes an IR graph as a `.tflite` FlatBuffer (schema version 3) that `tf.lite.Interpreter` loads.
///
/// Float32 graphs of the common inference ops are written; the graph's interface keeps its layout
/// (an ONNX NCHW model stays NCHW at its inputs and outputs): ops TFLite defines channels-last
/// (CONV_2D, DEPTHWISE_CONV_2D, the poolings) get a TRANSPOSE on each side, and a transpose that
/// undoes the one before it is dropped, so a graph read from a `.tflite` file goes back without
/// any. Weights are relaid out for TFLite (filters OHWI, depthwise 1HWC). The graph's input and
/// output names become the `serving_default` signature. Every op DLKit cannot write yet is listed
/// in one error; nothing is written then.
public enum TFLiteWriter {
    /// How the weights of convolutions and fully connected layers are stored.
    public enum Quantize: String, Sendable, CaseIterable {
        /// float32, as the graph holds them.
        case none
        /// float16 constants read through DEQUANTIZE (TFLite's "float16 quantization").
        case float16
        /// int8 with a symmetric scale (per output channel for convolutions, per tensor for fully
        /// connected layers), computed by TFLite's hybrid kernels with float activations.
        case dynamicInt8 = "dynamic-int8"
    }

    public static func write(_ graph: Graph, to path: String, quantize: Quantize = .none) throws(TFLiteError) {
        let bytes = try serialize(graph, path: path, quantize: quantize)
        do {
            let w = try AtomicFileWriter(path: path)
            do {
                try w.write(bytes)
                try w.commit()
            } catch {
                w.abandon()
                throw error
            }
        } catch {
            throw .write(path: path, reason: "\(error)")
        }
    }

    public static func serialize(_ graph: Graph, path: String = "<memory>", quantize: Quantize = .none) throws(TFLiteError) -> [UInt8] {
        var e = try TFLiteEmitter(graph: graph, path: path)
        e.quantize = quantize
        try e.emitAll()
        return e.finish()
    }
}
