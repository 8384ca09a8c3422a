import ArgumentParser
import DLKit
import Foundation

/// `--input-shape NAME=D1,D2,...` (repeatable), shared by verify, bench and profile.
struct InputShapeOptions: ParsableArguments {
    @Option(name: .customLong("input-shape"), help: ArgumentHelp("Shape of an input with dynamic dims, e.g. x=1,3,224,224 (repeatable; NAME= for a scalar).", valueName: "NAME=DIMS"))
    var specs: [String] = []

    /// The shapes by input name.
    func parsed() throws(DLKitError) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw .invalidArgument("--input-shape '\(spec)' is not NAME=DIMS (e.g. x=1,3,224,224)")
            }
            // `NAME=` with nothing after it is a scalar (rank 0).
            let text = spec[spec.index(after: eq)...]
            let dims = text.trimmingCharacters(in: .whitespaces).isEmpty ? []
                : text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            let valid = dims.compactMap { $0 }.filter { $0 >= 0 }
            guard valid.count == dims.count else {
                throw .invalidArgument("--input-shape '\(spec)': dims must be non-negative integers separated by commas")
            }
            let name = String(spec[..<eq])
            guard shapes[name] == nil else { throw .invalidArgument("--input-shape names '\(name)' twice") }
            shapes[name] = valid
        }
        return shapes
    }
}

/// What bench and profile share: the model, its input shapes, the threads.
struct TimingOptions: ParsableArguments {
    @Argument(help: "A model file or folder dlconvert reads.")
    var model: String

    @Option(help: "Size given to every dynamic input dimension --input-shape does not set.")
    var batch = 1

    @OptionGroup var inputShapes: InputShapeOptions

    @Option(name: .customLong("input-value"), help: ArgumentHelp("Fill an input with one value instead of random numbers, e.g. sr=16000 (repeatable): an input the model needs a valid value in (a sample rate, a length, a flag).", valueName: "NAME=VALUE"))
    var values: [String] = []

    @Option(help: "Threads for GEMM and the runtime's own loops together.")
    var threads = 1

    /// Sets the process's threads and loads the model with the environment's runtime options.
    func load(_ command: String) throws(DLKitError) -> Model {
        guard batch >= 1, threads >= 1 else { throw .invalidArgument("\(command): --batch and --threads must be at least 1") }
        let environment = ProcessInfo.processInfo.environment
        Model.setThreadCount(threads, environment: environment)
        return try Model(contentsOf: URL(fileURLWithPath: model), options: RuntimeOptions(environment: environment))
    }

    /// Random floats in [-1, 1) and zero integers (a valid index for any embedding or lookup),
    /// shaped by --input-shape and --batch; an input --input-value names holds that value.
    func inputs(for m: Model) throws(DLKitError) -> [String: Tensor] {
        var inputs = try ModelComparison.randomInputs(for: m.inputs, shapes: inputShapes.parsed(), seed: 0, otherDims: batch)
        for (name, t) in inputs where !t.dtype.isFloatingPoint { inputs[name] = Tensor(zeros: t.dtype, shape: t.shape) }
        var named = Set<String>()
        for spec in values {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex,
                  let value = Double(spec[spec.index(after: eq)...].trimmingCharacters(in: .whitespaces)), value.isFinite else {
                throw .invalidArgument("--input-value '\(spec)' is not NAME=VALUE with a finite number (e.g. sr=16000)")
            }
            let name = String(spec[..<eq])
            guard named.insert(name).inserted else { throw .invalidArgument("--input-value names '\(name)' twice") }
            guard let t = inputs[name] else {
                throw .invalidArgument("--input-value names '\(name)', which is not an input (inputs: \(m.inputs.map(\.name).joined(separator: ", ")))")
            }
            guard t.dtype != .string else { throw .invalidArgument("--input-value: input '\(name)' holds strings, not numbers") }
            inputs[name] = Tensor(shape: t.shape, scalars: [Double](repeating: value, count: t.elementCount)).converted(to: t.dtype)
        }
        return inputs
    }
}

extension InputShapeOptions {
    /// An input problem in the tool's terms: the library names the input, this adds the flag that fixes it.
    static func describe(_ problem: ModelComparison.InputProblem) -> String {
        switch problem {
        case .notAnInput(let name, let inputs):
            "--input-shape names '\(name)', which is not an input (inputs: \(inputs.joined(separator: ", ")))"
        case .shapeDoesNotFit(let name, let shape, let type):
            "--input-shape \(name)=\(shape.map(String.init).joined(separator: ",")) does not fit its type \(type)"
        case .dynamicDims(let name, let type, let example):
            "input '\(name)' has dynamic dims \(type); give them with --input-shape \(name)=\(example.map { $0.map(String.init).joined(separator: ",") } ?? "...")"
        default: problem.description
        }
    }
}

