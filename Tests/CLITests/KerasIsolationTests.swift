@testable import DLKit
import DLKeras
import DLTestSupport
import Foundation
import Testing

/// HDF5 files from strangers: the tools read them in a child process of their own executable
/// (KerasIsolation), so a file that crashes libhdf5 ends with one line and exit 1, and valid
/// files come out exactly as when read in-process.
@Suite struct KerasIsolationTests {
    struct RunResult {
        var status: Int32
        var stdout, stderr: String
    }

    static let dlconvert = TestPackage.tool("dlconvert")
    static let dlserve = TestPackage.tool("dlserve")

    /// Files that crash the system libhdf5 (1.10.8) when read in-process without DLKit's
    /// structural checks: the fuzz inputs kept in Fuzz/libhdf5-crashes/ (a leading selector
    /// byte, then the file) and the hand-made ones in fixtures/bad/.
    static let crashers: [String] = {
        let dir = TestPackage.root.appendingPathComponent("Fuzz/libhdf5-crashes").path
        let fuzz = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasSuffix(".md") }.sorted()
        return fuzz.map { "fuzz:\($0)" } + [
            "keras_global_heap_size_lies.h5", "keras_vlen_length_lies.h5", "keras_local_heap_unterminated.weights.h5",
        ].map { "bad:\($0)" }
    }()

    /// The file to hand the tools, in `folder`.
    static func materialise(_ entry: String, in folder: TemporaryFolder) throws -> String {
        if entry.hasPrefix("bad:") { return TestPackage.fixture("bad/\(entry.dropFirst(4))") }
        let bytes = try Data(contentsOf: TestPackage.root.appendingPathComponent("Fuzz/libhdf5-crashes/\(entry.dropFirst(5))"))
        let path = folder.file("\(entry.dropFirst(5)).h5")
        try bytes.dropFirst().write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Runs a tool with extra environment; stdin empty.
    static func run(_ tool: String, _ args: [String], env: [String: String] = [:]) throws -> RunResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }

    static func expectOneLine(_ r: RunResult, naming file: String, _ what: String) {
        #expect(r.status == 1, "\(what): exit \(r.status), stderr \(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(what): \(r.stderr)")
        #expect(r.stderr.contains((file as NSString).lastPathComponent), "\(what): \(r.stderr)")
    }

    @Test(arguments: crashers)
    func inspectAndConvertAnswerWithOneLine(entry: String) throws {
        let tmp = TemporaryFolder()
        let file = try Self.materialise(entry, in: tmp)
        // A private TMPDIR: the helper's temporary folder must be gone afterwards.
        let scratch = tmp.file("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let env = ["TMPDIR": scratch]
        Self.expectOneLine(try Self.run(Self.dlconvert, ["inspect", file], env: env), naming: file, "inspect \(entry)")
        let out = tmp.file("out.onnx")
        Self.expectOneLine(try Self.run(Self.dlconvert, ["convert", file, out], env: env), naming: file, "convert \(entry)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect((try FileManager.default.contentsOfDirectory(atPath: scratch)).isEmpty, "temporary files left behind")
        let serve = try Self.run(Self.dlserve, [file], env: env)
        #expect(serve.status == 1, "dlserve \(entry): exit \(serve.status)")
        #expect(serve.stderr.split(separator: "\n").count == 1, "dlserve \(entry): \(serve.stderr)")
        #expect(serve.stdout.isEmpty)
    }

    /// A helper that dies from a signal (as the process does when libhdf5 corrupts memory) is
    /// reported as a libhdf5 crash naming the file; nothing is left in the temporary folder.
    @Test func aHelperKilledBySignalIsOneError() throws {
        let tmp = TemporaryFolder()
        let script = tmp.file("crashing-helper")
        try "#!/bin/sh\nkill -SEGV $$\n".write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let file = TestPackage.fixture("keras/cnn.h5")
        do {
            _ = try KerasIsolation.readInHelper(file, helper: URL(fileURLWithPath: script))
            Issue.record("expected an error")
        } catch {
            let m = "\(error)"
            #expect(m.hasPrefix("libhdf5 crashed reading \(file)"), "\(m)")
            #expect(m.contains("the file is malformed"))
        }
    }

    /// The library's opt-in: a model loaded through a helper runs as one read in-process, and a
    /// file libhdf5 would crash on is an error.
    @Test func modelsLoadThroughAHelper() throws {
        let helper = URL(fileURLWithPath: Self.dlconvert)
        let url = URL(fileURLWithPath: TestPackage.fixture("keras/cnn.keras"))
        let isolated = try Model(contentsOf: url, hdf5Helper: helper)
        let direct = try Model(contentsOf: url)
        #expect(isolated.graph.initializers.names == direct.graph.initializers.names)
        let (ins, _) = try KerasCLITests.io("cnn")
        let feed = Dictionary(uniqueKeysWithValues: ins)
        try KerasCLITests.expectKeras(try isolated.run(feed), "cnn", "cnn.keras through a helper")
        do {
            _ = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture("bad/keras_global_heap_size_lies.h5")), hdf5Helper: helper)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("malformed HDF5 at byte"))
        }
    }

    /// The helper's own refusal comes back word for word, as the in-process reader says it.
    @Test func theHelpersErrorIsTheReadersError() throws {
        let file = TestPackage.fixture("bad/keras_cyclic_hard_link.weights.h5")
        var inProcess = ""
        do { _ = try KerasFile(path: file) } catch { inProcess = "\(error)" }
        do {
            _ = try KerasIsolation.readInHelper(file, helper: URL(fileURLWithPath: Self.dlconvert))
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == inProcess)
        }
    }

    /// Valid files read through the helper give the same parts, and the tools the same bytes.
    @Test(arguments: ["cnn.h5", "cnn.keras", "functional.tf.h5", "nested.weights.h5", "bigru.keras"])
    func validFilesComeOutTheSame(name: String) throws {
        let file = TestPackage.fixture("keras/\(name)")
        let direct = try KerasFile(path: file)
        let viaHelper = try KerasIsolation.readInHelper(file, helper: URL(fileURLWithPath: Self.dlconvert))
        #expect(viaHelper.kind == direct.kind)
        #expect(viaHelper.config == direct.config)
        #expect(viaHelper.kerasVersion == direct.kerasVersion)
        func flat(_ f: KerasFile) -> [(String, [UInt8])] {
            var out: [(String, [UInt8])] = []
            func walk(_ ls: [KerasLayerWeights], _ prefix: String) {
                for l in ls {
                    for w in l.weights { out.append(("\(prefix)\(l.name)|\(l.group)|\(w.name)|\(w.tensor.dtype)|\(w.tensor.shape)", w.tensor.withUnsafeBytes { Array($0) })) }
                    walk(l.sublayers, prefix + l.name + "/")
                }
            }
            walk(f.layers, "")
            for v in f.optimizer?.variables ?? [] { out.append(("opt|\(v.name)", v.tensor.withUnsafeBytes { Array($0) })) }
            return out
        }
        let a = flat(direct), b = flat(viaHelper)
        #expect(a.map(\.0) == b.map(\.0))
        #expect(a.map(\.1) == b.map(\.1))
    }

    @Test(arguments: ["cnn.h5", "attention.keras"])
    func convertGivesTheSameBytesIsolatedOrNot(name: String) throws {
        let tmp = TemporaryFolder()
        let file = TestPackage.fixture("keras/\(name)")
        for target in ["onnx", "safetensors"] {
            let isolated = tmp.file("isolated.\(target)"), direct = tmp.file("direct.\(target)")
            let r1 = try Self.run(Self.dlconvert, ["convert", file, isolated])
            let r2 = try Self.run(Self.dlconvert, ["convert", file, direct], env: ["DLKIT_HDF5_IN_PROCESS": "1"])
            #expect(r1.status == 0 && r2.status == 0, "\(r1.stderr) \(r2.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: isolated)) == Data(contentsOf: URL(fileURLWithPath: direct)), "\(name) -> \(target)")
        }
        let i1 = try Self.run(Self.dlconvert, ["inspect", "--json", file])
        let i2 = try Self.run(Self.dlconvert, ["inspect", "--json", file], env: ["DLKIT_HDF5_IN_PROCESS": "1"])
        #expect(i1.status == 0 && i1.stdout == i2.stdout)
    }
}
