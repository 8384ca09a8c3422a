import ArgumentParser
import DLKit
import Foundation

/// `--input-shape NAME=D1,D2,...` (repeatable), shared by verify, bench and profile.
struct InputShapeOptions: ParsableArguments {
    @Option(name: .customLong("input-shape"), help: ArgumentHelp("Shape of an input with dynamic dims, e.g. x=1,3,224,224 (repeatable).", valueName: "NAME=DIMS"))
    var specs: [String] = []

    /// The shapes by input name.
    func parsed() throws(DLKitError) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw .invalidArgument("--input-shape '\(spec)' is not NAME=DIMS (e.g. x=1,3,224,224)")
            }
            let dims = spec[spec.index(after: eq)...].split(separator: ",", omittingEmptySubsequences: false)
                .map { Int($0.trimmingCharacters(in: .whitespaces)) }
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
