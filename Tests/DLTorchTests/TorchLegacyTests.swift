import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

/// Old PyTorch files (fixtures/torch/legacy, made by scripts/fixtures/make_torch_legacy.py): the
/// legacy pickle layouts of Python 2-era torch and of every pickle protocol 0-2, each compared bit
/// for bit with what torch reads from the same file.
@Suite struct TorchLegacyTests {
    @Test(arguments: ["py2_lists", "py2_short", "py2_views", "text_ops", "proto0", "proto1"])
    func readsLegacyVariantAsTorchDoes(name: String) throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/legacy/\(name).pt"))
        #expect(f.format == .legacy)
        try TorchFixtureTests.check(try f.stateDict(), against: "legacy/\(name).expected.safetensors")
    }

    @Test func cudaLocationsAndSharedStoragesReadToTheCPU() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/legacy/py2_lists.pt"))
        let refs = try f.tensorRefs()
        let weight = try #require(refs.first { $0.name == "fc.weight" }?.ref)
        let bias = try #require(refs.first { $0.name == "fc.bias" }?.ref)
        #expect(weight.storage.location == "cuda:1")
        #expect(weight.storage.key == bias.storage.key && bias.storageOffset == 6)
    }

    @Test func nonTensorValuesOfTextOpcodesRead() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/legacy/text_ops.pt"))
        guard case .int(1 << 40)? = try f.value(at: "meta.steps") as TorchValue? else { Issue.record("steps"); return }
        guard case .float(0.125) = try f.value(at: "meta.lr") else { Issue.record("lr"); return }
        guard case .string("it's \"x\"\n") = try f.value(at: "meta.name") else { Issue.record("name: \(try f.value(at: "meta.name"))"); return }
        guard case .string("caf\u{e9} \u{20ac}") = try f.value(at: "meta.u") else { Issue.record("u: \(try f.value(at: "meta.u"))"); return }
    }

    @Test func textArgumentsParseExactlyTheirForm() throws {
        #expect(Unpickler.decimalBytes("119547037146038801333356") == TorchFile.legacyMagic)
        #expect(Unpickler.decimalBytes("-1") == [0xFF])
        #expect(Unpickler.decimalBytes("128") == [0x80, 0x00])
        #expect(Unpickler.decimalBytes("-129") == [0x7F, 0xFF])
        #expect(Unpickler.decimalBytes("12a") == nil && Unpickler.decimalBytes("-") == nil)
        #expect(Unpickler.quotedString(#"'a\'b\x41\101\n'"#) == Array("a'bAA\n".utf8))
        #expect(Unpickler.quotedString("'open") == nil && Unpickler.quotedString(#"'\x4'"#) == nil)
        let raw = Array(#"caf\u00e9 \U0001F600 \q"#.utf8) + [0xE9]
        #expect(raw.withUnsafeBytes { Unpickler.rawUnicodeEscape($0) } == "caf\u{e9} \u{1F600} \\q\u{e9}")
    }
}
