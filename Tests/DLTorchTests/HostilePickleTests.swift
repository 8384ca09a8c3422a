import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

/// Pickles and archives made to attack or confuse the reader: each must fail with a typed error
/// that says what and where, and never run, build or crash.
@Suite struct HostilePickleTests {
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    static func unicode(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        return [0x58, UInt8(u.count), 0, 0, 0] + u
    }

    static func load(_ bytes: [UInt8], torchScript: Bool = false) throws(TorchError) -> TorchValue {
        var result: Result<TorchValue, TorchError> = .success(.none)
        bytes.withUnsafeBytes { b in
            var u = Unpickler(b, path: "test.pt", entry: "data.pkl", torchScript: torchScript)
            do throws(TorchError) { result = .success(try u.load()) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    static func expectError(_ bytes: [UInt8], _ check: (TorchError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let v = try load(bytes)
            Issue.record("expected an error, got \(v.kindDescription)", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [("os", "system"), ("builtins", "eval"), ("posix", "system"), ("subprocess", "Popen"),
                      ("__builtin__", "eval"), ("builtins", "getattr"), ("torch", "load"), ("torch._utils", "_rebuild_evil"),
                      ("__torch__", "Model"), ("numpy.core.multiarray", "_reconstruct")])
    func forbiddenGlobalIsRefusedByNameBeforeAnythingIsBuilt(module: String, name: String) {
        // PROTO 2; GLOBAL; 'echo pwned'; TUPLE1; REDUCE; STOP
        let p: [UInt8] = [0x80, 0x02] + Self.global(module, name) + Self.unicode("echo pwned") + [0x85, 0x52, 0x2E]
        Self.expectError(p) {
            if case .forbiddenGlobal(_, "data.pkl", 2, let n) = $0 { return n == "\(module == "__builtin__" ? "builtins" : module).\(name)" }
            return false
        }
    }

    @Test func stackGlobalIsCheckedToo() {
        let p: [UInt8] = [0x80, 0x04] + Self.unicode("os") + Self.unicode("system") + [0x93] + Self.unicode("id") + [0x85, 0x52, 0x2E]
        Self.expectError(p) { if case .forbiddenGlobal(_, _, _, "os.system") = $0 { true } else { false } }
    }

    @Test func scriptClassesAreAllowedOnlyInTorchScriptArchives() throws {
        let p: [UInt8] = [0x80, 0x02] + Self.global("__torch__", "M") + [0x29, 0x81, 0x7D] + Self.unicode("training") + [0x88, 0x73, 0x62, 0x2E]
        Self.expectError(p) { if case .forbiddenGlobal(_, _, _, "__torch__.M") = $0 { true } else { false } }
        guard case .object("__torch__.M", let attrs) = try Self.load(p, torchScript: true), attrs.count == 1 else {
            Issue.record("expected an object"); return
        }
    }

    @Test(arguments: [UInt8(0x69), 0x6F, 0x82, 0x83, 0x84, 0x97, 0x98])
    func opcodesThatReachOutsideAreRefused(op: UInt8) {
        Self.expectError([0x80, 0x02, op, 0x2E]) { if case .unsupportedOpcode(_, _, 2, op) = $0 { true } else { false } }
    }

    @Test func allowedGlobalsOnlyDoTheirOneThing() {
        // Calling a dtype, instantiating a rebuild function, BUILD on a tuple: all refused.
        Self.expectError([0x80, 0x02] + Self.global("torch", "float32") + [0x29, 0x52, 0x2E]) { if case .invalidPickle = $0 { true } else { false } }
        Self.expectError([0x80, 0x02] + Self.global("torch._utils", "_rebuild_tensor_v2") + [0x29, 0x81, 0x2E]) { if case .invalidPickle = $0 { true } else { false } }
        Self.expectError([0x80, 0x02, 0x29, 0x7D, 0x62, 0x2E]) { $0.description.contains("BUILD") }
        // A persistent id that is not a storage.
        Self.expectError([0x80, 0x02] + Self.unicode("file") + [0x85, 0x51, 0x2E]) { $0.description.contains("persistent id") }
        // A text persistent id (protocol 0) that is not `repr` of a storage tuple, and one naming a class.
        Self.expectError([0x50] + Array("os.system('id')\n".utf8) + [0x2E]) { $0.description.contains("text persistent id") }
        Self.expectError([0x50] + Array("('storage', <class 'os.system'>, '1', 'cpu', 2, None)\n".utf8) + [0x2E]) {
            if case .forbiddenGlobal(_, _, _, "os.system") = $0 { true } else { false }
        }
        // Quantized and other tensors torch allows but DLKit does not read.
        Self.expectError([0x80, 0x02] + Self.global("torch._utils", "_rebuild_qtensor") + [0x29, 0x52, 0x2E]) { $0.description.contains("quantized") }
    }

    @Test func deepNestingIsBounded() {
        let n = Unpickler.maxDepth + 10
        let p: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x5D, count: n) + [UInt8](repeating: 0x61, count: n - 1) + [0x2E]
        Self.expectError(p) { if case .limitExceeded = $0 { $0.description.contains("nest") } else { false } }
    }

    @Test func memoReferencesCannotExpandExponentially() {
        // l0 = []; l(i+1) = [l(i), l(i)] via the memo: 60 levels would be 2^60 values.
        var p: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0]
        for i in 0..<60 {
            p += [0x5D, 0x28, 0x68, UInt8(i), 0x68, UInt8(i), 0x65, 0x71, UInt8(i + 1)]
        }
        p.append(0x2E)
        Self.expectError(p) { if case .limitExceeded = $0 { true } else { false } }
    }

    @Test func malformedPicklesFailWithOffsets() {
        Self.expectError([0x80, 0x02, 0x4B]) { $0.description.contains("truncated") }
        Self.expectError([0x80, 0x02, 0x4E]) { $0.description.contains("before STOP") }
        Self.expectError([0x80, 0x02, 0x2E]) { $0.description.contains("empty stack") }
        Self.expectError([0x80, 0x02, 0x68, 9, 0x2E]) { $0.description.contains("memo entry 9") }
        Self.expectError([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x2E]) { $0.description.contains("past the end") }
        Self.expectError([0x80, 0x02, 0x8B, 0xFF, 0xFF, 0, 0, 0x2E]) { if case .limitExceeded = $0 { true } else { false } }
        Self.expectError([0x80, 0x02, 0x4E, 0x4E, 0x61, 0x2E]) { $0.description.contains("not a list") }
        Self.expectError([0x80, 0x09, 0x4E, 0x2E]) { $0.description.contains("protocol 9") }
    }

    /// A real malicious checkpoint: an object whose __reduce__ calls os.system, saved by torch.
    @Test(.enabled(if: TestPackage.hasPython)) func torchSavedExploitIsRefused() throws {
        let dir = TemporaryFolder()
        let marker = dir.file("pwned")
        let script = """
            import os, sys, torch
            class Exploit:
                def __reduce__(self):
                    return (os.system, ("touch \(marker)",))
            torch.save({"weight": torch.ones(2), "payload": Exploit()}, sys.argv[1])
            """
        let r = try runProcess(TestPackage.python, ["-c", script, dir.file("evil.pt")])
        #expect(r.status == 0, "\(r.stderr)")
        do {
            _ = try TorchFile(path: dir.file("evil.pt"))
            Issue.record("expected the file to be refused")
        } catch {
            #expect(error.description.contains("posix.system") || error.description.contains("os.system"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }
}
