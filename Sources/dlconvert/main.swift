import ArgumentParser
import DLKit
import Foundation

/// `dlconvert IN OUT` converts; `dlconvert inspect FILE` describes.
struct DLConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlconvert",
        abstract: "Convert neural network files between formats, and inspect them.",
        discussion: """
            The input format is recognised from the file's content; the output format from its
            extension (.onnx, .ckpt, .tflite, .xml for OpenVINO IR, .safetensors, .pt/.pth/.bin). PyTorch files are read without
            running any of their code.

            Examples:
              dlconvert model.onnx model.ckpt        # ONNX -> DLKit checkpoint
              dlconvert model.ckpt model.onnx        # and back
              dlconvert model.onnx weights.safetensors
              dlconvert model.ckpt model.onnx --external-data --opset 13
              dlconvert weights.safetensors tuned.onnx --graph model.onnx
              dlconvert verify model.onnx tuned.onnx --input-shape x=1,3,224,224
              dlconvert checkpoint.pt model.safetensors --key model
              dlconvert model.safetensors model.pt --dtype float16
              dlconvert inspect model.onnx --json
              dlconvert inspect checkpoint.pt          # nested contents of a torch.save file
              dlconvert model.keras model.onnx       # Keras (.h5, .keras) -> ONNX
              dlconvert tuned.ckpt tuned.weights.h5  # weights back to Keras 3 (.h5: legacy layout)
              dlconvert w.weights.h5 m.onnx --graph model.h5
              dlconvert saved_model_dir model.onnx   # TensorFlow SavedModel (serving_default)
              dlconvert saved_model_dir vars.safetensors   # its variables, by checkpoint key
              dlconvert model.tflite model.onnx      # TFLite in (float, fp16, int8) ...
              dlconvert model.onnx model.tflite      # ... and out (float32)
              dlconvert bert-folder/ bert.onnx       # Hugging Face folder (config.json) -> ONNX
              dlconvert tuned.ckpt tuned-folder --format hf   # back to a Hugging Face folder
              dlconvert tokenize bert-folder/ < texts.txt
              echo "Once upon a time" | dlconvert generate llama-folder/ --max-tokens 20
              dlconvert model.xml model.onnx         # OpenVINO IR (model.bin beside it) -> ONNX
              dlconvert model.onnx model.xml         # -> IR v11 (model.xml + model.bin), f32 weights
              dlconvert model.onnx model.xml --compress-to-fp16
            """,
        subcommands: [Convert.self, Inspect.self, Verify.self, Bench.self, Profile.self, Tokenize.self, Generate.self],
        defaultSubcommand: Convert.self)
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Convert IN to OUT (the default command).")

    @Argument(help: "The file to read (.onnx, .ckpt, .tflite, .safetensors, .pt/.pth/.bin, .h5, .keras, model.safetensors.index.json).")
    var input: String

    @Argument(help: "The file to write; its extension picks the format (.onnx, .ckpt, .tflite, .safetensors, .pt, .pth, .bin, .h5, .weights.h5).")
    var output: String

    @OptionGroup(title: "ONNX output and weights onto a graph")
    var onnx: ONNXOutputOptions

    @Option(help: "Take only this part of a nested PyTorch checkpoint (a dotted path, e.g. model or optimizer.state.0).")
    var key: String?

    @Option(help: "Convert floating-point weights to this dtype (float32, float16, bfloat16, float64).")
    var dtype: String?

    @Option(help: "The signature of a TensorFlow SavedModel to convert (default: serving_default).")
    var signature: String?
    @Option(help: ArgumentHelp("For .tflite output: store convolution and fully connected weights as float16 (behind DEQUANTIZE) or dynamic-int8 (int8 with scales, float activations).", valueName: "float16|dynamic-int8"))
    var quantize: String?

    @OptionGroup(title: "Training state (PyTorch optimizers)")
    var optimizer: OptimizerOptions

    @Option(help: ArgumentHelp("hf: OUT is a folder to write as Hugging Face (config.json, model.safetensors, tokenizer files) from a model read from one; the same as naming OUT/config.json.", valueName: "FORMAT"))
    var format: String?

    func validate() throws {
        if let format, format != "hf" { throw ValidationError("--format takes hf (other formats follow OUT's extension)") }
    }

    func run() throws {
        let output = format == "hf" ? (self.output as NSString).appendingPathComponent("config.json") : self.output
        try reportingErrors {
            var format = FileFormat.unknown
            try optimizer.run(input: input, output: output) { target in
                format = try onnx.convert(input, target, key: key, dtype: try parseDType(dtype), signature: signature,
                                          quantize: try parseQuantize(quantize))
            }
            if isatty(STDERR_FILENO) != 0 {
                FileHandle.standardError.write(Data("dlconvert: \(input) (\(format.rawValue)) -> \(output)\n".utf8))
            }
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model or weights file: format, inputs, outputs, tensors, op counts, parameters.")

    @Argument(help: "The file to describe.")
    var file: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        try reportingErrors {
            let summary = try ModelSummary(contentsOf: URL(fileURLWithPath: file))
            print(json ? summary.json.serialized() : summary.text, terminator: json ? "\n" : "")
        }
    }
}

/// Runs `body`; a DLKit error becomes one line on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as DLKitError {
        let message = if case .inputs(let problems) = e { problems.map(InputShapeOptions.describe).joined(separator: "; ") }
                      else { e.description(spelling: flag) }
        FileHandle.standardError.write(Data("dlconvert: \(message)\n".utf8))
        throw ExitCode(1)
    }
}

/// The flag that sets a conversion setting, for the library's errors.
func flag(_ setting: ConversionSetting) -> String {
    switch setting {
    case .opset: "--opset"
    case .externalData: "--external-data"
    case .allowMissing: "--allow-missing"
    case .key: "--key"
    case .dtype: "--dtype"
    case .compressToFP16: "--compress-to-fp16"
    case .tfliteQuantize: "--quantize"
    }
}

// Keras (HDF5) inputs are read in a child process of this executable (KerasIsolation): libhdf5
// may crash on a hostile file, and then only the child dies.
CommandLineTool.setUp()
DLConvert.main()

/// The `--quantize` choice. - Throws: a DLKit error naming the accepted values.
func parseQuantize(_ text: String?) throws(DLKitError) -> TFLiteWriter.Quantize {
    guard let text else { return .none }
    guard let q = TFLiteWriter.Quantize(rawValue: text), q != .none else {
        throw .invalidArgument("--quantize must be float16 or dynamic-int8, got '\(text)'")
    }
    return q
}
