import DLSafeTensors
import DLTensor
import Foundation
import Testing

@Suite struct WriterTests {
    /// One tensor of every dtype DLKit writes, plus a 0-rank and an empty one.
    static func sampleTensors() -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for d in DType.allCases where d.safetensorsName != nil {
            out.append(("t_\(d.rawValue)", Tensor.make(d, shape: [2, 3]) { Double($0) - 2 }))
        }
        out.append(("scalar", Tensor(scalar: Float(3.25))))
        out.append(("empty", Tensor(zeros: .float32, shape: [0, 3])))
        out.append(("i64_extremes", Tensor(shape: [2], scalars: [Int64.min, Int64.max])))
        return out
    }

    @Test func writerRoundTripsEveryDType() throws {
        let dir = TempDir()
        let p = dir.file("out.safetensors")
        let tensors = Self.sampleTensors()
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: p)
        let file = try SafeTensorsFile(path: p)
        #expect(file.metadata == ["format": "pt"])
        #expect(Set(file.names) == Set(tensors.map(\.name)))
        for (name, t) in tensors {
            let back = try file.tensor(named: name)
            #expect(back.bitwiseEqual(t), "\(name)")
            #expect(back.isMapped, "\(name) should be a view: the writer aligns every tensor")
        }
        #expect(file.headerLength % 8 == 0)
        #expect(dir.contents() == ["out.safetensors"])
    }

    @Test func writerLaysOutLikeTheReferenceWriter() throws {
        // Header produced by safetensors 0.8.0 (`safetensors.numpy.save`) for the same tensors.
        let expected = #"{"__metadata__":{"format":"pt"},"c":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"#
            + #""a":{"dtype":"F32","shape":[3],"data_offsets":[8,20]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]},"#
            + #""s":{"dtype":"F32","shape":[],"data_offsets":[20,24]},"h":{"dtype":"F16","shape":[1],"data_offsets":[24,26]},"#
            + "\"é\\\"\\n\\u0001\u{7F}\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[26,28]},"
            + #""b":{"dtype":"U8","shape":[2],"data_offsets":[28,30]},"z":{"dtype":"BOOL","shape":[1],"data_offsets":[30,31]}}"#
        let tensors: [(name: String, tensor: Tensor)] = [
            ("b", Tensor(zeros: .uint8, shape: [2])), ("a", Tensor(zeros: .float32, shape: [3])),
            ("c", Tensor(zeros: .float64, shape: [1])), ("z", Tensor(zeros: .bool, shape: [1])),
            ("h", Tensor(zeros: .float16, shape: [1])), ("e", Tensor(zeros: .float32, shape: [0, 3])),
            ("s", Tensor(zeros: .float32, shape: [])), ("é\"\n\u{01}\u{7F}", Tensor(zeros: .int16, shape: [1])),
        ]
        let dir = TempDir()
        let p = dir.file("layout.safetensors")
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: p)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: p)))
        let n = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        #expect(n == (expected.utf8.count + 7) / 8 * 8)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        let padding = String(repeating: " ", count: n - expected.utf8.count)
        #expect(header == expected + padding)
        #expect(bytes.count == 8 + n + 31)
        #expect(try SafeTensorsFile(path: p).names == ["c", "a", "e", "s", "h", "é\"\n\u{01}\u{7F}", "b", "z"])
    }

    @Test func writerReproducesTheReferenceFixtureByteForByte() throws {
        let fixture = Package.fixture("all_dtypes.safetensors")
        let original = try SafeTensorsFile(path: fixture)
        let dir = TempDir()
        let p = dir.file("again.safetensors")
        try SafeTensorsWriter.write(original.tensors().reversed(), metadata: original.metadata, to: p)
        #expect(try Data(contentsOf: URL(fileURLWithPath: p)) == Data(contentsOf: URL(fileURLWithPath: fixture)))
    }

    @Test func writerEscapesUnicodeAndControlCharacters() throws {
        let names = ["é\u{301}x", "🧠.weight", "quote\"back\\slash/", "tab\tnl\ncr\rbell\u{07}del\u{7F}", "\u{2028}sep", "日本語"]
        let tensors = names.enumerated().map { (i, n) in (name: n, tensor: Tensor(shape: [1], scalars: [Int32(i)])) }
        let metadata = ["k\"ey\n": "va\\lue\u{00}\u{1F}", "ünï": "🧠", "": ""]
        let dir = TempDir()
        let p = dir.file("unicode.safetensors")
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: p)
        let file = try SafeTensorsFile(path: p)
        #expect(file.metadata == metadata)
        for (i, n) in names.enumerated() {
            #expect(try file.tensor(named: n).scalars(as: Int32.self) == [Int32(i)], "\(n)")
        }
    }

    @Test func writerStoresEmptyMetadataOnlyWhenGiven() throws {
        let dir = TempDir()
        let t: [(name: String, tensor: Tensor)] = [("x", Tensor(scalar: UInt8(1)))]
        try SafeTensorsWriter.write(t, metadata: nil, to: dir.file("a.safetensors"))
        try SafeTensorsWriter.write(t, metadata: [:], to: dir.file("b.safetensors"))
        let a = try String(contentsOfFile: dir.file("a.safetensors"), encoding: .utf8)
        let b = try String(contentsOfFile: dir.file("b.safetensors"), encoding: .utf8)
        #expect(!a.contains("__metadata__"))
        #expect(b.contains(#"{"__metadata__":{},"x":"#))
    }

    @Test func writerRejectsDuplicateNamesAndLeavesNothingBehind() throws {
        let dir = TempDir()
        let p = dir.file("dup.safetensors")
        let t = Tensor(zeros: .float32, shape: [2])
        let e = writeError { () throws(SafeTensorsError) in try SafeTensorsWriter.write([("w", t), ("v", t), ("w", t)], to: p) }
        #expect(e == .duplicateName(path: p, name: "w", offset: nil))
        #expect(e?.description.contains("'w'") == true)
        #expect(dir.contents().isEmpty, "left behind: \(dir.contents())")
    }

    @Test(arguments: ["", "__metadata__"])
    func writerRejectsInvalidNames(name: String) throws {
        let dir = TempDir()
        let p = dir.file("bad.safetensors")
        let e = writeError { () throws(SafeTensorsError) in
            try SafeTensorsWriter.write([(name, Tensor(zeros: .float32, shape: [1]))], to: p)
        }
        guard case .invalidName(p, name, _)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(dir.contents().isEmpty)
    }

    @Test func writerRejectsStringTensors() throws {
        let dir = TempDir()
        let p = dir.file("s.safetensors")
        let e = writeError { () throws(SafeTensorsError) in
            try SafeTensorsWriter.write([("words", Tensor(shape: [2], strings: ["a", "b"]))], to: p)
        }
        #expect(e == .unsupportedDType(path: p, name: "words", dtype: .string))
        #expect(e?.description.contains("'words'") == true)
        #expect(dir.contents().isEmpty)
    }

    @Test func failedWriteLeavesTheExistingFileUntouched() throws {
        let dir = TempDir()
        let p = dir.file("model.safetensors")
        try SafeTensorsWriter.write([("old", Tensor(shape: [1], scalars: [Float(1)]))], to: p)
        let before = try Data(contentsOf: URL(fileURLWithPath: p))
        let t = Tensor(zeros: .float32, shape: [1])
        #expect(throws: SafeTensorsError.self) { try SafeTensorsWriter.write([("x", t), ("x", t)], to: p) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: p)) == before)
        #expect(dir.contents() == ["model.safetensors"])
    }

    @Test func writerReportsAFolderThatDoesNotExist() throws {
        let dir = TempDir()
        let p = dir.file("missing/folder/out.safetensors")
        let e = writeError { () throws(SafeTensorsError) in
            try SafeTensorsWriter.write([("x", Tensor(scalar: Float(1)))], to: p)
        }
        guard case .writeFailed(p, _)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(dir.contents().isEmpty)
    }

    @Test func rewritingAFileInPlaceKeepsEarlierViewsValid() throws {
        let dir = TempDir()
        let p = dir.file("model.safetensors")
        try SafeTensorsWriter.write([("w", Tensor(shape: [3], scalars: [Float(1), 2, 3]))], to: p)
        let view = try SafeTensorsFile(path: p).tensor(named: "w")
        #expect(view.isMapped)
        // Overwrite the file the view maps, from that very view: rename leaves the old bytes alive.
        try SafeTensorsWriter.write([("w", view), ("w2", view)], metadata: ["step": "2"], to: p)
        #expect(view.scalars(as: Float.self) == [1, 2, 3])
        let file = try SafeTensorsFile(path: p)
        #expect(file.names == ["w", "w2"] && file.metadata == ["step": "2"])
        #expect(try file.tensor(named: "w2").scalars(as: Float.self) == [1, 2, 3])
        #expect(dir.contents() == ["model.safetensors"])
    }
}
