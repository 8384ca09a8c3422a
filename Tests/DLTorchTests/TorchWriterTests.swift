import DLSafeTensors
import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

@testable import DLTorch

@Suite struct TorchWriterTests {
    /// One tensor of every dtype DLKit has, plus 0-dim and empty ones.
    static func everyDType() -> NamedTensors {
        var sd = NamedTensors()
        sd["f32"] = Tensor(shape: [2, 3], scalars: [Float(1.5), -2, 3, .infinity, -0.0, 6])
        sd["f64"] = Tensor(shape: [2], scalars: [Double.pi, -1e300])
        sd["f16"] = [UInt8]([0x00, 0x3C, 0x00, 0xC0]).withUnsafeBytes { b in
            (try? Tensor(dtype: .float16, shape: [2], bytes: b)) ?? Tensor(zeros: .float16, shape: [2])
        }
        sd["bf16"] = Tensor(shape: [2], scalars: [BFloat16(1.0), BFloat16(-3.0)])
        sd["i64"] = Tensor(shape: [3], scalars: [Int64.min, 0, Int64.max])
        sd["i32"] = Tensor(shape: [2], scalars: [Int32.min, 7])
        sd["i16"] = Tensor(shape: [2], scalars: [Int16(-300), 300])
        sd["i8"] = Tensor(shape: [2], scalars: [Int8(-128), 127])
        sd["u8"] = Tensor(shape: [2], scalars: [UInt8(0), 255])
        sd["bool"] = Tensor(shape: [3], scalars: [true, false, true])
        sd["u16"] = Tensor(shape: [2], scalars: [UInt16(0), 65535])
        sd["u32"] = Tensor(shape: [2], scalars: [UInt32(0), UInt32.max])
        sd["u64"] = Tensor(shape: [2], scalars: [UInt64(1), UInt64.max])
        sd["layer.scalar"] = Tensor(scalar: Float(3.25))
        sd["layer.empty"] = Tensor(zeros: .float32, shape: [0, 4])
        return sd
    }

    @Test func writtenStateDictReadsBackBitForBit() throws {
        let dir = TemporaryFolder()
        let sd = Self.everyDType()
        try TorchWriter.write(stateDict: sd, to: dir.file("w.pt"))
        let f = try TorchFile(path: dir.file("w.pt"))
        let back = try f.stateDict()
        #expect(back.names == sd.names)
        for (name, t) in sd { #expect(back[name]?.bitwiseEqual(t) == true, "\(name)") }
        #expect(back["f32"]?.isMapped == true)
        #expect(dir.contents() == ["w.pt"])
    }

    @Test func entriesAreLaidOutAsTorchLaysThemOut() throws {
        let dir = TemporaryFolder()
        try TorchWriter.write(stateDict: Self.everyDType(), to: dir.file("model.pt"))
        let zip = try ZipArchive(file: MappedFile(path: dir.file("model.pt")))
        let names = zip.entries.map(\.name)
        #expect(names.prefix(4) == ["model/data.pkl", "model/.format_version", "model/.storage_alignment", "model/byteorder"])
        #expect(names.suffix(2) == ["model/version", "model/.data/serialization_id"])
        for e in zip.entries {
            #expect(e.dataOffset % 64 == 0, "\(e.name) at \(e.dataOffset)")
            #expect(e.method == 0)
            #expect(CRC32.checksum(Array(try zip.bytes(of: e))) == e.crc32, "\(e.name)")
        }
    }

    @Test func nestedValuesRoundTrip() throws {
        let dir = TemporaryFolder()
        let value: TorchValue = .dict([
            TorchDictEntry(.string("model"), .dict([TorchDictEntry(.string("w"), .tensorData(Tensor(shape: [2], scalars: [Float(1), 2])))])),
            TorchDictEntry(.string("epoch"), .int(70_000)),
            TorchDictEntry(.string("big"), .int(-(1 << 40))),
            TorchDictEntry(.string("lr"), .float(0.001)),
            TorchDictEntry(.string("betas"), .tuple([.float(0.9), .float(0.999)])),
            TorchDictEntry(.string("flags"), .list([.bool(true), .none])),
            TorchDictEntry(.int(7), .string("seven")),
            TorchDictEntry(.string("raw"), .bytes([0, 200, 255])),
        ])
        try TorchWriter.write(value, to: dir.file("n.pt"))
        let f = try TorchFile(path: dir.file("n.pt"))
        guard case .int(70_000) = try f.value(at: "epoch"), case .int(-(1 << 40)) = try f.value(at: "big"),
              case .float(0.001) = try f.value(at: "lr"), case .tuple(let betas) = try f.value(at: "betas"), betas.count == 2,
              case .string("seven") = try f.value(at: "7"), case .bytes([0, 200, 255]) = try f.value(at: "raw")
        else { Issue.record("values differ: \(f.root)"); return }
        #expect(try f.stateDict().names == ["model.w"])
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
        // Slicing by 8 and the byte loop agree across every split.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var split = CRC32()
        data.withUnsafeBytes { b in
            split.update(UnsafeRawBufferPointer(rebasing: b[0..<13]))
            split.update(UnsafeRawBufferPointer(rebasing: b[13...]))
        }
        #expect(split.value == CRC32.checksum(data))
    }

    @Test func failedWriteLeavesNothingBehind() throws {
        let dir = TemporaryFolder()
        var sd = NamedTensors()
        sd["s"] = Tensor(shape: [1], strings: ["x"])
        do {
            try TorchWriter.write(stateDict: sd, to: dir.file("bad.pt"))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("string tensors"))
        }
        #expect(dir.contents().isEmpty)
    }

    /// torch.load(weights_only=True) reads what we write to the same names, dtypes and values.
    @Test(.enabled(if: TestPackage.hasPython)) func torchLoadsWhatWeWrite() throws {
        let dir = TemporaryFolder()
        let sd = Self.everyDType()
        try TorchWriter.write(stateDict: sd, to: dir.file("w.pt"))
        try SafeTensorsWriter.write(sd.map { ($0.name, $0.tensor) }, to: dir.file("w.safetensors"))
        let script = """
            import sys, torch
            from safetensors.torch import load_file
            got = torch.load(sys.argv[1], weights_only=True)
            want = load_file(sys.argv[2])
            assert list(got.keys()) == \(sd.names.description.replacingOccurrences(of: "\"", with: "'")), list(got.keys())
            for k, v in want.items():
                g = got[k]
                assert g.dtype == v.dtype and g.shape == v.shape, (k, g.dtype, v.dtype, g.shape, v.shape)
                assert torch.equal(g.view(torch.uint8) if g.dtype == torch.bool else g, v.view(torch.uint8) if v.dtype == torch.bool else v) or g.numel() == 0, k
            print("ok")
            """
        let r = try runProcess(TestPackage.python, ["-c", script, dir.file("w.pt"), dir.file("w.safetensors")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok"))
    }
}

/// The ZIP64 forms (sizes and offsets in extra fields, 8-byte data descriptors, the ZIP64 end
/// record as the only source of the directory) only appear past 4 GB; forced on a small file,
/// they must read back here, in Python's zipfile and in torch.load.
@Suite struct Zip64Tests {
    @Test func forcedZip64ArchiveReadsBack() throws {
        let dir = TemporaryFolder()
        let sd = TorchWriterTests.everyDType()
        let value = TorchValue.dict(sd.map { TorchDictEntry(.string($0.name), .tensorData($0.tensor)) })
        try TorchWriter.write(value, to: dir.file("z.pt"), archiveName: nil, orderedRoot: true, forceZip64: true)
        let zip = try ZipArchive(file: MappedFile(path: dir.file("z.pt")))
        for e in zip.entries { #expect(e.dataOffset % 64 == 0, "\(e.name)") }
        let back = try TorchFile(path: dir.file("z.pt")).stateDict()
        for (name, t) in sd { #expect(back[name]?.bitwiseEqual(t) == true, "\(name)") }
    }

    @Test(.enabled(if: TestPackage.hasPython, "needs the project venv (scripts/bootstrap) for zipfile and torch.load"))
    func forcedZip64ArchiveLoadsInPythonAndTorch() throws {
        let dir = TemporaryFolder()
        let sd = TorchWriterTests.everyDType()
        let value = TorchValue.dict(sd.map { TorchDictEntry(.string($0.name), .tensorData($0.tensor)) })
        try TorchWriter.write(value, to: dir.file("z.pt"), archiveName: nil, orderedRoot: true, forceZip64: true)
        let script = """
            import sys, zipfile, torch
            z = zipfile.ZipFile(sys.argv[1])
            assert z.testzip() is None
            got = torch.load(sys.argv[1], weights_only=True)
            assert list(got.keys()) == \(sd.names.description.replacingOccurrences(of: "\"", with: "'")), list(got.keys())
            print("ok")
            """
        let r = try runProcess(TestPackage.python, ["-c", script, dir.file("z.pt")])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok"))
    }
}
