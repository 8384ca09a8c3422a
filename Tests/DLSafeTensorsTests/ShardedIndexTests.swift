import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

@Suite struct ShardedIndexTests {
    let index = TestPackage.fixture("torch/sharded/model.safetensors.index.json")

    @Test func readsEveryShardThroughTheIndex() throws {
        let s = try ShardedSafeTensors(path: index)
        #expect(s.shards.count == 2)
        #expect(Set(s.names) == ["embed.weight", "layers.0.weight", "layers.1.weight", "lm_head.weight"])
        #expect(s.metadata["total_size"] != nil)
        let direct = try SafeTensorsFile(path: TestPackage.fixture("torch/sharded/model-00002-of-00002.safetensors"))
        #expect(try s.tensor(named: "lm_head.weight").bitwiseEqual(try direct.tensor(named: "lm_head.weight")))
    }

    static func expectIndexError(_ json: String, sourceLocation: SourceLocation = #_sourceLocation, _ check: (SafeTensorsError) -> Bool) throws {
        let dir = TemporaryFolder()
        for f in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            try FileManager.default.copyItem(atPath: TestPackage.fixture("torch/sharded/\(f)"), toPath: dir.file(f))
        }
        dir.write(Array(json.utf8), to: "model.safetensors.index.json")
        do {
            _ = try ShardedSafeTensors(path: dir.file("model.safetensors.index.json"))
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func indexNamingATensorItsShardLacksIsRefused() throws {
        try Self.expectIndexError(#"{"weight_map": {"ghost": "model-00001-of-00002.safetensors"}}"#) {
            if case .tensorNotFound(_, "ghost") = $0 { true } else { false }
        }
    }

    @Test func indexNamingAMissingShardIsRefused() throws {
        try Self.expectIndexError(#"{"weight_map": {"w": "model-00003-of-00003.safetensors"}}"#) {
            if case .cannotOpen = $0 { true } else { false }
        }
    }

    @Test func indexWithoutWeightMapOrWithBadValuesIsRefused() throws {
        try Self.expectIndexError(#"{"metadata": {}}"#) { $0.description.contains("no weight_map") }
        try Self.expectIndexError(#"{"weight_map": {"w": 3}}"#) { $0.description.contains("not a file name") }
        try Self.expectIndexError(#"{"weight_map": {"w": "/etc/passwd"}}"#) { $0.description.contains("plain file name") }
        try Self.expectIndexError(#"[1, 2]"#) { if case .invalidJSON = $0 { true } else { false } }
    }
}
