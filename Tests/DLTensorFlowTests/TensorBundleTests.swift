import DLKit
import DLSafeTensors
import DLTensor
import DLTensorFlow
import DLTestSupport
import Foundation
import Testing

/// Checkpoint variables read from the index and shards equal `tf.train.load_checkpoint`'s values
/// bit for bit (fixtures/tensorflow, scripts/fixtures/make_tensorflow.py).
@Suite struct TensorBundleTests {
    /// fixture name -> the bundle prefix inside fixtures/tensorflow.
    static let bundles = ["module": "module/variables/variables", "keras_cnn": "keras_cnn/variables/variables",
                          "keras_mlp": "keras_mlp/variables/variables", "keras_rnn": "keras_rnn/variables/variables", "ckpt": "ckpt/ckpt-1"]

    /// The `var:` tensors of NAME.expected.safetensors, by checkpoint key.
    static func expected(_ name: String) throws -> [String: Tensor] {
        let f = try SafeTensorsFile(path: TestPackage.fixture("tensorflow/\(name).expected.safetensors"))
        var out: [String: Tensor] = [:]
        for (n, t) in try f.tensors() where n.hasPrefix("var:") { out[String(n.dropFirst(4))] = t }
        return out
    }

    static func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
    }

    @Test(arguments: bundles.keys.sorted())
    func variablesAreBitExact(name: String) throws {
        let want = try Self.expected(name)
        let bundle = try TensorBundle(path: TestPackage.fixture("tensorflow/\(try #require(Self.bundles[name]))"))
        let got = try bundle.tensors()
        #expect(Set(got.names) == Set(want.keys), "\(name): \(got.names) vs \(want.keys.sorted())")
        #expect(want.count >= 4)
        for (key, t) in got {
            guard let w = want[key] else { continue }
            #expect(Self.sameBits(t, w), "\(name): \(key)")
            // bfloat16 is stored in the expected file as its uint16 bits.
            #expect(t.dtype == w.dtype || (t.dtype == .bfloat16 && w.dtype == .uint16), "\(name): \(key) is \(t.dtype), TensorFlow \(w.dtype)")
        }
        // The object graph is a string entry beside the variables, checked by its own CRC.
        let graph = try #require(bundle.entry(TensorBundle.objectGraphKey))
        let strings = try bundle.strings(graph)
        #expect(strings.count == 1 && strings[0].count > 100)
    }

    @Test func dlconvertWritesEveryVariableUnderItsKey() throws {
        let tmp = TemporaryFolder()
        for (input, name) in [("tensorflow/module", "module"), ("tensorflow/ckpt/ckpt-1.index", "ckpt"), ("tensorflow/ckpt/ckpt-1", "ckpt")] {
            let out = tmp.file("\(name).safetensors")
            let r = try runProcess(TestPackage.tool("dlconvert"), [TestPackage.fixture(input), out])
            #expect(r.status == 0, "\(input): \(r.stderr)")
            let want = try Self.expected(name)
            let written = try SafeTensorsFile(path: out).tensors()
            #expect(written.count == want.count)
            for (key, t) in written {
                let w = try #require(want[key], "\(key) is not a checkpoint key")
                #expect(Self.sameBits(t, w), "\(input): \(key)")
            }
        }
    }

    /// Copies a bundle into a temporary folder with `change` applied to one of its files.
    static func corrupted(_ file: String, _ change: (inout [UInt8]) -> Void) throws -> (TemporaryFolder, String) {
        let tmp = TemporaryFolder()
        for suffix in ["index", "data-00000-of-00001"] {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tensorflow/module/variables/variables.\(suffix)"))))
            if suffix == file { change(&bytes) }
            _ = tmp.write(bytes, to: "v.\(suffix)")
        }
        return (tmp, tmp.file("v"))
    }

    static func failure(_ prefix: String) -> String? {
        do { _ = try TensorBundle(path: prefix).tensors(); return nil } catch { return "\(error)" }
    }

    @Test func corruptionIsFoundByTheChecksums() throws {
        // One bit of a weight: the entry's CRC32C.
        var (tmp, prefix) = try Self.corrupted("data-00000-of-00001") { $0[5] ^= 0x10 }
        var m = Self.failure(prefix)
        #expect(m?.contains("w1/.ATTRIBUTES/VARIABLE_VALUE") == true && m?.contains("fails its CRC32C check") == true, "\(m ?? "accepted")")
        // One bit of the data block: the block trailer's CRC32C.
        (tmp, prefix) = try Self.corrupted("index") { $0[40] ^= 0x01 }
        m = Self.failure(prefix)
        #expect(m?.contains("the data block at byte 0 fails its CRC32C check") == true, "\(m ?? "accepted")")
        // A short shard.
        (tmp, prefix) = try Self.corrupted("data-00000-of-00001") { $0.removeLast(300) }
        m = Self.failure(prefix)
        #expect(m?.contains("run past the end of the shard") == true, "\(m ?? "accepted")")
        // Every truncation of the index is refused with one line.
        let index = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tensorflow/module/variables/variables.index"))))
        for n in stride(from: 0, to: index.count, by: 7) {
            (tmp, prefix) = try Self.corrupted("index") { $0 = Array(index.prefix(n)) }
            let m = Self.failure(prefix)
            #expect(m != nil && m?.contains("\n") == false && m?.contains("v.index") == true, "cut at \(n): \(m ?? "accepted")")
        }
        _ = tmp
    }

    /// Partitioned variables (tf.compat.v1 partitioners, a sharded TF1 Saver): assembled from their
    /// slices bit for bit as `tf.train.load_checkpoint` gives them, through the library and dlconvert.
    /// The 200-row table's slices start at rows 67 and 134, so its slice keys use the two-byte
    /// signed numbers of the ordered code.
    @Test func partitionedVariablesAreAssembledFromTheirSlices() throws {
        let want = try Self.expected("sliced")
        let bundle = try TensorBundle(path: TestPackage.fixture("tensorflow/sliced/model.ckpt"))
        #expect(bundle.entries.map(\.key).sorted() == ["cube", "emb/table", "ids", "plain", "proj/kernel"])
        #expect(bundle.entry("emb/table")?.slices.count == 3 && bundle.entry("proj/kernel")?.slices.count == 2)
        let got = try bundle.tensors()
        #expect(Set(got.names) == Set(want.keys))
        for (key, t) in got {
            let w = try #require(want[key], "\(key)")
            #expect(Self.sameBits(t, w) && t.dtype == w.dtype, "\(key): \(t.dtype)\(t.shape) vs \(w.dtype)\(w.shape)")
        }
        let tmp = TemporaryFolder()
        let r = try runProcess(TestPackage.tool("dlconvert"), [TestPackage.fixture("tensorflow/sliced/model.ckpt.index"), tmp.file("s.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        for (key, t) in try SafeTensorsFile(path: tmp.file("s.safetensors")).tensors() {
            #expect(Self.sameBits(t, try #require(want[key], "\(key)")), "\(key)")
        }
        // One bit of a slice's bytes is caught by that slice's CRC32C, named by the variable's slice.
        for f in ["index", "data-00000-of-00003", "data-00001-of-00003", "data-00002-of-00003"] {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("tensorflow/sliced/model.ckpt.\(f)"))))
            if f == "data-00001-of-00003" { bytes[100] ^= 0x04 }
            _ = tmp.write(bytes, to: "bad.\(f)")
        }
        let m = Self.failure(tmp.file("bad"))
        #expect(m?.contains("emb/table") == true && m?.contains("fails its CRC32C check") == true, "\(m ?? "accepted")")
    }
}
