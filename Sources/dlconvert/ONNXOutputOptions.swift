import ArgumentParser
import DLKit
import Foundation

/// Options of `dlconvert IN OUT` for an ONNX output and for binding weights onto a graph.
struct ONNXOutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Write ONNX at this opset (7-26), converting op versions where their meaning changed; default: the opset the model was read with (17 if none).", valueName: "N"))
    var opset: Int?

    @Flag(help: "Write the weights to OUT.data beside OUT.onnx (offsets aligned to 4096). Chosen automatically, with a note on stderr, when the model would exceed 2 GiB.")
    var externalData = false

    @Option(help: ArgumentHelp("With --external-data: tensors under this many bytes stay inline (default 1024).", valueName: "BYTES"))
    var externalThreshold: Int?

    @Option(help: ArgumentHelp("Bind the weights in IN onto this model's graph by name, replacing its initializers; every missing, extra or mismatched tensor is an error.", valueName: "MODEL"))
    var graph: String?

    @Flag(help: "With --graph: keep the graph's own values for tensors the weights lack.")
    var allowMissing = false

    @Flag(help: "A Hugging Face decoder folder to .onnx: logits only, without the KV cache inputs (past_key_values.*) and outputs (present.*).")
    var noKvCache = false
    @Flag(help: "OpenVINO IR output (.xml): store float32 weights as f16 with a Convert, as OpenVINO's save_model does by default (DLKit writes f32 unless asked).")
    var compressToFP16 = false

    func validate() throws {
        if let t = externalThreshold, t < 0 { throw ValidationError("--external-threshold must be 0 or more bytes") }
        if externalThreshold != nil && !externalData { throw ValidationError("--external-threshold needs --external-data") }
        if allowMissing && graph == nil { throw ValidationError("--allow-missing needs --graph") }
    }

    var conversionOptions: ConversionOptions {
        var onnx = ONNXWriteOptions(opset: opset)
        if externalData {
            onnx.externalData = .always
            onnx.externalThreshold = externalThreshold ?? ONNXWriteOptions.defaultExternalThreshold
        }
        var options = ConversionOptions(onnx: onnx, graph: graph.map { URL(fileURLWithPath: $0) }, allowMissing: allowMissing)
        options.kvCache = !noKvCache
        options.compressToFP16 = compressToFP16
        return options
    }

    /// Converts `input` to `output`; notes (an automatic switch to external data, kept tensors)
    /// go to stderr.
    func convert(_ input: String, _ output: String, key: String? = nil, dtype: DType? = nil, signature: String? = nil,
                 quantize: TFLiteWriter.Quantize = .none) throws(DLKitError) -> FileFormat {
        var options = conversionOptions
        options.key = key
        options.dtype = dtype
        options.signature = signature
        options.tfliteQuantize = quantize
        let report = try Converter.convert(from: URL(fileURLWithPath: input), to: URL(fileURLWithPath: output),
                                           options: options)
        for note in report.notes { FileHandle.standardError.write(Data("dlconvert: \(note)\n".utf8)) }
        return report.inputFormat
    }
}
