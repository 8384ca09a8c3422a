import DLKit
import DLTestSupport
import Foundation
import Testing

/// dlconvert with PyTorch files: conversion in every direction, --key, inspect's nested listing.
@Suite struct TorchCLITests {
    let dlconvert = TestPackage.tool("dlconvert")
    let checkpoint = TestPackage.fixture("torch/checkpoint.pt")

    @Test func convertsACheckpointPartBetweenEveryFormat() throws {
        let dir = TemporaryFolder()
        var r = try runProcess(dlconvert, [checkpoint, dir.file("m.safetensors"), "--key", "model"])
        #expect(r.status == 0, "\(r.stderr)")
        for (src, dst) in [("m.safetensors", "m.pt"), ("m.pt", "m.ckpt"), ("m.ckpt", "m.onnx"), ("m.onnx", "m.pth"), ("m.pth", "m2.safetensors")] {
            r = try runProcess(dlconvert, [dir.file(src), dir.file(dst)])
            #expect(r.status == 0, "\(src) -> \(dst): \(r.stderr)")
        }
        let a = try StateDict(contentsOf: dir.url("m.safetensors"))
        let b = try StateDict(contentsOf: dir.url("m2.safetensors"))
        #expect(Set(a.names) == ["0.weight", "0.bias", "2.weight", "2.bias"])
        for (name, t) in a { #expect(b[name]?.bitwiseEqual(t) == true, "\(name)") }
    }

    /// Old (legacy, non-zip) torch.save files of fixtures/torch/legacy: what dlconvert writes is
    /// what torch reads from them.
    @Test(arguments: ["py2_lists", "py2_short", "py2_views", "text_ops", "proto0", "proto1"])
    func convertsOldTorchFilesAsTorchReadsThem(name: String) throws {
        let dir = TemporaryFolder()
        try FileManager.default.copyItem(atPath: TestPackage.fixture("torch/legacy/\(name).pt"), toPath: dir.file("old.pth"))
        let r = try runProcess(dlconvert, [dir.file("old.pth"), dir.file("out.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try StateDict(contentsOf: dir.url("out.safetensors"))
        let want = try StateDict(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/legacy/\(name).expected.safetensors")))
        #expect(Set(got.names) == Set(want.names))
        for (n, t) in want { #expect(got[n]?.bitwiseEqual(t) == true, "\(name): \(n)") }
    }

    @Test func inspectListsNestedContents() throws {
        let r = try runProcess(dlconvert, ["inspect", checkpoint])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("format: pytorch-zip"))
        #expect(r.stdout.contains("  model: dict (4)\n    0.weight: float32 [4, 3]\n"))
        #expect(r.stdout.contains("        betas: (0.9, 0.999)\n"))
        #expect(r.stdout.contains("  epoch: 3\n"))
        let json = try parseJSON(try runProcess(dlconvert, ["inspect", checkpoint, "--json"]).stdout)
        guard case .array(let contents)? = json["contents"] else { Issue.record("no contents"); return }
        #expect(contents.contains { $0["path"] == .string("optimizer.state.0.exp_avg") && $0["kind"] == .string("tensor") })
    }

    @Test func badKeyIsOneLineNamingWhatThereIs() throws {
        let dir = TemporaryFolder()
        let r = try runProcess(dlconvert, [checkpoint, dir.file("x.safetensors"), "--key", "modle"])
        #expect(r.status == 1)
        #expect(r.stderr == "dlconvert: \(checkpoint): no entry 'modle'; top-level entries: model, optimizer, epoch, config\n")
        #expect(dir.contents().isEmpty)
    }

    @Test(.enabled(if: TestPackage.hasPython, "needs the project venv (scripts/bootstrap) to write the pickle with torch"))
    func maliciousPickleIsRefusedOnTheCommandLine() throws {
        let dir = TemporaryFolder()
        let script = """
            import os, sys, torch
            class E:
                def __reduce__(self): return (eval, ("1+1",))
            torch.save({"w": torch.ones(1), "x": E()}, sys.argv[1])
            """
        var r = try runProcess(TestPackage.python, ["-c", script, dir.file("evil.pt")])
        #expect(r.status == 0, "\(r.stderr)")
        r = try runProcess(dlconvert, [dir.file("evil.pt"), dir.file("out.safetensors")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("'builtins.eval', which is not allowed"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(dir.contents() == ["evil.pt"])
    }
}
