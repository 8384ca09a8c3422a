import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

/// Reads the files of fixtures/torch (made by scripts/fixtures/make_torch.py with CPU torch) and
/// compares every tensor bit for bit with what torch itself read back.
@Suite struct TorchFixtureTests {
    static func expected(_ name: String) throws -> [(name: String, tensor: Tensor)] {
        try SafeTensorsFile(path: TestPackage.fixture("torch/\(name)")).tensors()
    }

    static func check(_ got: NamedTensors, against expectedFile: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let want = try expected(expectedFile)
        #expect(Set(got.names) == Set(want.map(\.name)), "names differ", sourceLocation: sourceLocation)
        for (name, w) in want {
            guard let g = got[name] else { Issue.record("missing \(name)", sourceLocation: sourceLocation); continue }
            #expect(g.dtype == w.dtype && g.shape == w.shape, "\(name): \(g.dtype) \(g.shape) vs \(w.dtype) \(w.shape)", sourceLocation: sourceLocation)
            #expect(g.bitwiseEqual(w), "\(name) differs", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [
        ("state_dict.pt", "state_dict.expected.safetensors", TorchFile.Format.zip),
        ("bigendian.pt", "bigendian.expected.safetensors", .zip),
        ("legacy.pt", "legacy.expected.safetensors", .legacy),
        ("python2.pt", "python2.expected.safetensors", .legacy),
        ("scripted.pt", "scripted.expected.safetensors", .torchScript),
        ("checkpoint.pt", "checkpoint.expected.safetensors", .zip),
    ])
    func readsFixtureBitForBit(file: String, expected: String, format: TorchFile.Format) throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/\(file)"))
        #expect(f.format == format)
        try Self.check(try f.stateDict(), against: expected)
    }

    @Test func zipStateDictViewsContiguousStoragesInPlace() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/state_dict.pt"))
        let sd = try f.stateDict()
        #expect(sd["f32"]?.isMapped == true)
        #expect(sd["shared.view"]?.isMapped == true)
        #expect(sd["strided.transposed"]?.isMapped == false)
        #expect(sd["scalar"]?.shape == [])
        #expect(sd["empty"]?.shape == [0, 4])
        #expect(sd["c64"]?.shape == [2, 2])
        let refs = try f.tensorRefs()
        #expect(refs.first { $0.name == "param" }?.ref.isParameter == true)
        #expect(refs.first { $0.name == "u16" }?.ref.scalarType.name == "uint16")
    }

    @Test func torchScriptNamesFollowStateDictOrder() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/scripted.pt"))
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/scripted.names.json")))
        let names = try JSONDecoder().decode([String].self, from: data)
        #expect(try f.stateDict().names == names)
        #expect(!names.contains("note"))
    }

    @Test func nestedCheckpointSelectsByDottedKey() throws {
        let f = try TorchFile(path: TestPackage.fixture("torch/checkpoint.pt"))
        let model = try f.stateDict(key: "model")
        #expect(model.names == ["0.weight", "0.bias", "2.weight", "2.bias"])
        let state = try f.stateDict(key: "optimizer.state.0")
        #expect(Set(state.names) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
        guard case .int(3)? = try f.value(at: "epoch") as TorchValue? else { Issue.record("epoch"); return }
        guard case .string("mlp") = try f.value(at: "config.name") else { Issue.record("config.name"); return }
        let outline = try f.outline()
        #expect(outline.contains { $0.path == "optimizer.param_groups.0.lr" && $0.depth == 3 })
        do {
            _ = try f.stateDict(key: "nope")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("'nope'") && error.description.contains("model"))
        }
        do {
            _ = try f.stateDict(key: "epoch")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("no tensors"))
        }
    }
}
