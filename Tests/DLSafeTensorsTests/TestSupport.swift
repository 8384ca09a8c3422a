import DLSafeTensors
import DLTensor
import Foundation
import DLTestSupport
import Testing

/// The safetensors fixtures and the venv, through the shared test support.
enum Package {
    static func fixture(_ name: String) -> String { TestPackage.fixture("safetensors/\(name)") }
    static var python: String { TestPackage.python }
    static var hasPython: Bool { TestPackage.hasPython }
}

/// A fresh folder, removed with everything in it when the value goes away.
typealias TempDir = TemporaryFolder

extension TemporaryFolder {
    /// Writes `bytes` to `model.safetensors` and returns its path.
    @discardableResult
    func write(_ bytes: [UInt8]) -> String { write(bytes, to: "model.safetensors") }

    /// Writes a safetensors file by hand: the 8-byte length (`headerLength` or the header's real
    /// length), the header text, then `data`. For building hostile files.
    @discardableResult
    func safetensors(
        header: String, data: [UInt8] = [], headerLength: UInt64? = nil, name: String = "model.safetensors"
    ) -> String {
        write(frame(headerBytes: Array(header.utf8), data: data, headerLength: headerLength), to: name)
    }
}

/// The bytes of a safetensors file with `headerBytes` as its header.
func frame(headerBytes: [UInt8], data: [UInt8] = [], headerLength: UInt64? = nil) -> [UInt8] {
    let n = headerLength ?? UInt64(headerBytes.count)
    return withUnsafeBytes(of: n.littleEndian) { Array($0) } + headerBytes + data
}

/// The error opening `path` throws, or nil when it opens.
func openError(_ path: String) -> SafeTensorsError? {
    do {
        _ = try SafeTensorsFile(path: path)
        return nil
    } catch {
        return error
    }
}

/// The error `body` throws, or nil when it returns.
func writeError(_ body: () throws(SafeTensorsError) -> Void) -> SafeTensorsError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// The absolute file offset of the first occurrence of `needle` in a header written by `safetensors(header:)`.
func headerOffset(of needle: String, in header: String) -> Int {
    guard let r = header.range(of: needle) else { return -1 }
    return 8 + header.utf8.distance(from: header.startIndex, to: r.lowerBound)
}

/// Runs the venv's Python on `script` with `arguments`; returns (exit status, stdout + stderr).
func runPython(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Package.python)
    p.arguments = ["-c", script] + arguments
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self))
}

extension Tensor {
    /// `count` elements from `f(i)`, converted to this test's dtype through Double.
    static func make(_ dtype: DType, shape: [Int], _ f: (Int) -> Double) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, scalars: (0..<n).map { f($0) }).converted(to: dtype)
    }
}
