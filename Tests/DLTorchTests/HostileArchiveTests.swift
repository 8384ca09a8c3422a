import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

/// Zip archives and legacy files whose structure lies: clear errors naming the entry, tensor and
/// offset, never a read outside the file.
@Suite struct HostileArchiveTests {
    /// A small valid archive's bytes: weight (6 floats) and bias (2 floats).
    static func archive() throws -> [UInt8] {
        let dir = TemporaryFolder()
        var sd = NamedTensors()
        sd["weight"] = Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6])
        sd["bias"] = Tensor(shape: [2], scalars: [Float(7), 8])
        try TorchWriter.write(stateDict: sd, to: dir.file("a.pt"))
        return Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("a.pt"))))
    }

    static func open(_ bytes: [UInt8]) throws -> TorchFile {
        let dir = TemporaryFolder()
        return try TorchFile(path: dir.write(bytes, to: "x.pt"))
    }

    static func find(_ b: [UInt8], _ sig: UInt32, from: Int = 0) -> Int? {
        let s = (0..<4).map { UInt8(truncatingIfNeeded: sig >> (8 * UInt32($0))) }
        var i = from
        while i + 4 <= b.count {
            if b[i] == s[0], b[i + 1] == s[1], b[i + 2] == s[2], b[i + 3] == s[3] { return i }
            i += 1
        }
        return nil
    }

    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    /// The offset of the central directory record of the entry whose name ends with `suffix`.
    static func centralRecord(_ b: [UInt8], _ suffix: String) -> Int? {
        var at = 0
        while let i = find(b, 0x0201_4B50, from: at) {
            let n = Int(b[i + 28]) | Int(b[i + 29]) << 8
            if String(decoding: b[(i + 46)..<(i + 46 + n)], as: UTF8.self).hasSuffix(suffix) { return i }
            at = i + 4
        }
        return nil
    }

    static func expectError(_ bytes: [UInt8], _ check: (TorchError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let f = try open(bytes)
            _ = try f.stateDict()
            Issue.record("expected an error", sourceLocation: sourceLocation)
        } catch let e as TorchError {
            #expect(check(e), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("untyped error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func centralDirectoryPointingOutsideTheFileIsRefused() throws {
        var b = try Self.archive()
        // Both the ZIP64 record and the classic end record name the directory's offset.
        let z = try #require(Self.find(b, 0x0606_4B50))
        for i in 0..<8 { b[z + 48 + i] = 0x7F }
        Self.expectError(b) { if case .invalidZip = $0 { $0.description.contains("outside the file") } else { false } }
    }

    @Test func localHeaderOutsideTheFileIsRefused() throws {
        var b = try Self.archive()
        let c = try #require(Self.centralRecord(b, "data/1"))
        Self.put32(&b, c + 42, 0x7FFF_0000)
        Self.expectError(b) { $0.description.contains("data/1") && $0.description.contains("outside the file") }
    }

    @Test func entrySizeRunningPastTheEndIsRefused() throws {
        var b = try Self.archive()
        let c = try #require(Self.centralRecord(b, "data/0"))
        Self.put32(&b, c + 20, 0x0100_0000)
        Self.put32(&b, c + 24, 0x0100_0000)
        Self.expectError(b) { if case .entryOutsideFile(_, let e, _, 0x0100_0000, _) = $0 { e.hasSuffix("data/0") } else { false } }
    }

    @Test func storageShorterThanItsTensorNamesTheTensor() throws {
        var b = try Self.archive()
        let c = try #require(Self.centralRecord(b, "data/0"))
        Self.put32(&b, c + 20, 8)
        Self.put32(&b, c + 24, 8)
        Self.expectError(b) { if case .storageTooShort(_, "weight", "0", 24, 8) = $0 { true } else { false } }
    }

    @Test func compressedStorageIsRefusedByName() throws {
        var b = try Self.archive()
        let c = try #require(Self.centralRecord(b, "data/1"))
        b[c + 10] = 8
        Self.expectError(b) { if case .compressedEntry(_, let e, 8) = $0 { e.hasSuffix("data/1") } else { false } }
    }

    @Test func truncatedFilesFailCleanly() throws {
        let b = try Self.archive()
        for cut in [0, 10, 100, b.count / 2, b.count - 30, b.count - 1] {
            Self.expectError(Array(b[0..<cut])) { _ in true }
        }
    }

    @Test func legacyStorageShorterThanDeclaredIsRefused() throws {
        let b = Array(try Data(contentsOf: URL(fileURLWithPath: TestPackage.fixture("torch/python2.pt"))))
        Self.expectError(Array(b[0..<(b.count - 4)])) { if case .storageTooShort(_, _, "140234", 24, 20) = $0 { true } else { false } }
    }

    @Test func zipWithoutDataPickleIsNotATorchFile() throws {
        let dir = TemporaryFolder()
        let out = try AtomicFileWriter(path: dir.file("other.zip"))
        var z = ZipStreamWriter(out: out)
        try z.add("metadata.json", Array("{}".utf8))
        try z.finish()
        try out.commit()
        do {
            _ = try TorchFile(path: dir.file("other.zip"))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("no data.pkl"))
        }
    }

    @Test func brokenDeflateDataFailsCleanly() {
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12, 0x34]
        garbage.withUnsafeBytes { b in
            do {
                _ = try Inflate.decompress(b, expectedSize: 100)
                Issue.record("expected a failure")
            } catch {}
        }
    }
}
