import ArgumentParser
import DLKit
import Foundation

/// `--optimizer-state` / `--optimizer-out`: PyTorch optimizer state into and out of a `.ckpt`.
struct OptimizerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Start training from this PyTorch optimizer.state_dict() (torch.save file); OUT must be .ckpt.", valueName: "OPT.pt"))
    var optimizerState: String?

    @Option(help: ArgumentHelp("With --optimizer-state: the key of the optimizer state inside a nested checkpoint (e.g. optimizer).", valueName: "KEY"))
    var optimizerKey: String?

    @Option(help: ArgumentHelp("Also write the training state IN holds as a PyTorch optimizer state_dict, for optimizer.load_state_dict.", valueName: "OPT.pt"))
    var optimizerOut: String?

    func validate() throws {
        if optimizerKey != nil && optimizerState == nil { throw ValidationError("--optimizer-key needs --optimizer-state") }
    }

    var isSet: Bool { optimizerState != nil || optimizerOut != nil }

    /// Converts with `convert`, attaching or extracting optimizer state. With --optimizer-state the
    /// conversion goes to a temporary file first, so a failure leaves OUT untouched.
    func run(input: String, output: String, convert: (String) throws -> Void) throws {
        if let out = optimizerOut {
            try TrainingSession.exportTorchState(checkpoint: input, to: out)
        }
        guard let opt = optimizerState else {
            try convert(output)
            return
        }
        guard output.lowercased().hasSuffix(".ckpt") else {
            throw DLKitError.invalidArgument("--optimizer-state needs a .ckpt output, got \(output)")
        }
        let dir = (output as NSString).deletingLastPathComponent
        let temp = (dir.isEmpty ? "." : dir) + "/.dlconvert-\(getpid())-\(UUID().uuidString).ckpt"
        defer { try? FileManager.default.removeItem(atPath: temp) }
        try convert(temp)
        try TrainingSession.attachTorchState(checkpoint: temp, optimizer: opt, key: optimizerKey, weightsSource: input, to: output)
    }
}
