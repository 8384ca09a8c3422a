import DLSupport
import DLTensor
import Foundation

/// Paths of the package, its fixtures, its venv and built tools, for tests.
public enum TestPackage {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // DLTestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    public static func fixture(_ relative: String) -> String {
        root.appendingPathComponent("fixtures/\(relative)").path
    }

    /// The project venv's Python (scripts/bootstrap), with onnx, onnxruntime, safetensors, numpy.
    public static let python = root.appendingPathComponent(".venv/bin/python").path
    public static var hasPython: Bool { FileManager.default.isExecutableFile(atPath: python) }

    /// The folder the built executables are in (the test bundle sits beside them).
    public static var productsDirectory: URL {
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
            return b.bundleURL.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    public static func tool(_ name: String) -> String { productsDirectory.appendingPathComponent(name).path }
}

/// A fresh folder, removed with everything in it when the value goes away.
public final class TemporaryFolder: @unchecked Sendable {
    public let path: String

    public init() {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dlkit-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { "\(path)/\(name)" }
    public func url(_ name: String) -> URL { URL(fileURLWithPath: file(name)) }

    public func contents() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    @discardableResult
    public func write(_ bytes: [UInt8], to name: String) -> String {
        let p = file(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}

/// What a finished process printed and returned.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs `executable` with `arguments`, feeding `input` on stdin, and waits for it.
public func runProcess(_ executable: String, _ arguments: [String], input: String = "") throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    let writer = Thread {
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try? inPipe.fileHandleForWriting.close()
    }
    writer.start()
    nonisolated(unsafe) var errData = Data()
    let errReader = Thread { errData = errPipe.fileHandleForReading.readDataToEndOfFile() }
    errReader.start()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    while errReader.isExecuting || !errReader.isFinished { usleep(1000) }
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// True when every element of `a` is within `rtol·|b| + atol` of `b`; NaN equals NaN.
public func allClose(_ a: [Double], _ b: [Double], rtol: Double = 1e-5, atol: Double = 1e-6) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        if x.isNaN && y.isNaN { continue }
        if Swift.abs(x - y) > atol + rtol * Swift.abs(y) { return false }
    }
    return true
}

/// The largest |a - b| / max(|b|, tiny) over the elements.
public func maxRelativeError(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { Swift.abs($0 - $1) / Swift.max(Swift.abs($1), 1e-6) }.max() ?? 0
}

/// Parses JSON text with the strict parser.
@discardableResult
package func parseJSON(_ text: String) throws -> JSON {
    var failure: JSONSyntaxError?
    var result = JSON.null
    Array(text.utf8).withUnsafeBytes { b in
        do throws(JSONSyntaxError) { result = try JSONParser.parse(b) } catch { failure = error }
    }
    if let failure { throw failure }
    return result
}
