import DLSafeTensors
import DLTensor
import Foundation
import Testing

/// One test per way a file can be broken. Each builds the bytes by hand, checks the error case and
/// its payload, and checks that the message names the file and, where one is at fault, the tensor.
@Suite struct HostileInputTests {
    /// An entry's JSON text.
    static func entry(_ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
        "{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
            .replacingOccurrences(of: " ", with: "")
    }

    static let zeros12 = [UInt8](repeating: 0, count: 12)

    @Test func readerRejectsMissingFile() throws {
        let dir = TempDir()
        let e = try #require(openError(dir.file("absent.safetensors")))
        guard case .cannotOpen(let path, _) = e else { Issue.record("got \(e)"); return }
        #expect(path == dir.file("absent.safetensors"))
        #expect(e.description.contains("absent.safetensors"))
    }

    @Test(arguments: [0, 1, 7])
    func readerRejectsFileShorterThanTheLengthField(size: Int) throws {
        let dir = TempDir()
        let p = dir.write([UInt8](repeating: 0x7B, count: size))
        #expect(openError(p) == .fileTooSmall(path: p, fileSize: size))
    }

    @Test func readerRejectsHeaderLongerThanFile() throws {
        let dir = TempDir()
        let p = dir.safetensors(header: "{}", headerLength: 1000)
        let e = try #require(openError(p))
        #expect(e == .headerTruncated(path: p, headerLength: 1000, fileSize: 10))
        #expect(e.description.contains("model.safetensors") && e.description.contains("truncated"))
    }

    @Test(arguments: [UInt64(100_000_001), UInt64(1) << 40, UInt64.max])
    func readerRejectsHeaderClaimOverTheLimit(claim: UInt64) throws {
        let dir = TempDir()
        let p = dir.safetensors(header: "{}", headerLength: claim)
        #expect(openError(p) == .headerTooLarge(path: p, headerLength: claim, limit: 100_000_000))
    }

    /// Headers that are not JSON, or not an object; the second value is the offset in the header.
    static let badJSON: [(String, [UInt8], Int)] = [
        ("trailing comma", Array(#"{"a":1,}"#.utf8), 7),
        ("unclosed object", Array(#"{"a":{"#.utf8), 6),
        ("unclosed string", Array(#"{"abc"#.utf8), 1),
        ("single quotes", Array("{'a':1}".utf8), 1),
        ("text after the object", Array(#"{} {}"#.utf8), 3),
        ("top level is an array", Array("[]".utf8), 0),
        ("invalid UTF-8", [0x7B, 0x22, 0xC3, 0x28, 0x22, 0x3A, 0x31, 0x7D], 1),
        ("raw newline in a string", Array("{\"a\nb\":1}".utf8), 3),
        ("lone surrogate escape", Array(#"{"\udc00":1}"#.utf8), 2),
        ("unpaired high surrogate", Array(#"{"\ud800x":1}"#.utf8), 2),
        ("leading zero", Array(#"{"a":[01]}"#.utf8), 7),
        ("empty header", [], 0),
        ("NUL padding", Array("{}".utf8) + [0, 0, 0, 0, 0, 0], 2),
    ]

    @Test(arguments: badJSON)
    func readerRejectsInvalidJSON(label: String, header: [UInt8], offset: Int) throws {
        let dir = TempDir()
        let p = dir.write(frame(headerBytes: header))
        let e = try #require(openError(p), "\(label)")
        guard case .invalidJSON(let path, let at, _) = e else { Issue.record("\(label): got \(e)"); return }
        #expect(path == p)
        #expect(at == 8 + offset, "\(label): \(e)")
        #expect(e.description.contains("not valid JSON"))
    }

    @Test func readerRejectsDeeplyNestedJSON() throws {
        let dir = TempDir()
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let p = dir.safetensors(header: "{\"__metadata__\":{\"k\":\(deep)}}")
        let e = try #require(openError(p))
        guard case .invalidJSON(_, _, let detail) = e else { Issue.record("got \(e)"); return }
        #expect(detail.contains("nest"))
    }

    @Test func readerRejectsDuplicateTensorNames() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 0, 8)),\"a\":\(Self.entry("F32", [1], 8, 12))}"
        let p = dir.safetensors(header: header, data: Self.zeros12)
        let second = headerOffset(of: "\"a\":{\"dtype\":\"F32\",\"shape\":[1]", in: header)
        let e = try #require(openError(p))
        #expect(e == .duplicateName(path: p, name: "a", offset: second))
        #expect(e.description.contains("'a'") && e.description.contains("twice"))
    }

    @Test func readerRejectsDuplicateNamesDifferingOnlyInEscaping() throws {
        let dir = TempDir()
        let header = "{\"b\":\(Self.entry("F32", [2], 0, 8)),\"\\u0062\":\(Self.entry("F32", [1], 8, 12))}"
        let p = dir.safetensors(header: header, data: Self.zeros12)
        guard case .duplicateName(_, "b", _)? = openError(p) else { Issue.record("not rejected"); return }
    }

    @Test func readerRejectsOverlappingOffsets() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 0, 8)),\"b\":\(Self.entry("F32", [2], 4, 12))}"
        let p = dir.safetensors(header: header, data: Self.zeros12)
        let dataStart = 8 + header.utf8.count
        let e = try #require(openError(p))
        #expect(e == .overlap(path: p, name: "b", other: "a", offset: dataStart + 4))
        #expect(e.description.contains("'b'") && e.description.contains("'a'"))
    }

    @Test func readerRejectsHoleBetweenTensors() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 0, 8)),\"b\":\(Self.entry("F32", [1], 12, 16))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 16))
        let dataStart = 8 + header.utf8.count
        let e = try #require(openError(p))
        #expect(e == .hole(path: p, name: "b", offset: dataStart + 8, gap: 4))
        #expect(e.description.contains("'b'"))
    }

    @Test func readerRejectsDataNotStartingAtZero() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 4, 12))}"
        let p = dir.safetensors(header: header, data: Self.zeros12)
        #expect(openError(p) == .hole(path: p, name: "a", offset: 8 + header.utf8.count, gap: 4))
    }

    @Test func readerRejectsSizeNotMatchingShape() throws {
        let dir = TempDir()
        let header = "{\"w\":\(Self.entry("F32", [3], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        #expect(e == .sizeMismatch(path: p, name: "w", dtype: .float32, shape: [3], expected: 12, actual: 8,
                                   offset: 8 + header.utf8.count))
        #expect(e.description.contains("'w'") && e.description.contains("12 bytes"))
    }

    @Test func readerRejectsElementCountThatOverflows() throws {
        let dir = TempDir()
        let header = "{\"w\":\(Self.entry("F32", [1 << 62, 4], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        guard case .sizeMismatch(_, "w", _, _, nil, 8, _) = e else { Issue.record("got \(e)"); return }
        #expect(e.description.contains("more bytes than can be addressed"))
    }

    @Test(arguments: ["F6_E2M3", "C64", "Q4", "f32", ""])
    func readerRejectsUnknownDType(dtype: String) throws {
        let dir = TempDir()
        let header = "{\"emb\":\(Self.entry(dtype, [2], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        #expect(e == .unknownDType(path: p, name: "emb", offset: headerOffset(of: "\"emb\"", in: header), dtype: dtype))
        #expect(e.description.contains("'emb'") && e.description.contains("'\(dtype)'"))
    }

    @Test func readerRejectsTrailingBytes() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 10))
        let dataStart = 8 + header.utf8.count
        let e = try #require(openError(p))
        #expect(e == .trailingBytes(path: p, dataEnd: dataStart + 8, fileSize: dataStart + 10))
        #expect(e.description.contains("2 bytes"))
    }

    @Test func readerRejectsNegativeDimension() throws {
        let dir = TempDir()
        let header = #"{"fc1.weight":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}"#
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        guard case .invalidEntry(_, "fc1.weight", let offset, let detail) = e else { Issue.record("got \(e)"); return }
        #expect(offset == 9)
        #expect(detail.contains("-1") && detail.contains("dimension 1"))
        #expect(e.description.contains("'fc1.weight'"))
    }

    @Test func readerRejectsNonStringMetadataValue() throws {
        let dir = TempDir()
        let header = "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3},\"a\":\(Self.entry("F32", [2], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        guard case .invalidMetadata(_, "epoch", let offset, _) = e else { Issue.record("got \(e)"); return }
        #expect(offset == headerOffset(of: "\"epoch\"", in: header))
        #expect(e.description.contains("'epoch'") && e.description.contains("strings"))
    }

    @Test(arguments: [
        #"{"__metadata__":["pt"]}"#,
        #"{"__metadata__":null}"#,
        #"{"__metadata__":{"k":"v","k":"w"}}"#,
    ])
    func readerRejectsMalformedMetadata(header: String) throws {
        let dir = TempDir()
        let p = dir.safetensors(header: header)
        let e = try #require(openError(p))
        guard case .invalidMetadata = e else { Issue.record("got \(e)"); return }
    }

    @Test func readerRejectsTruncatedFile() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [2], 0, 8)),\"fc1.weight\":\(Self.entry("F32", [1], 8, 12))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 9))
        let dataStart = 8 + header.utf8.count
        let e = try #require(openError(p))
        #expect(e == .dataPastEnd(path: p, name: "fc1.weight", offset: dataStart + 8, byteCount: 4, fileSize: dataStart + 9))
        #expect(e.description == "\(p): tensor 'fc1.weight' needs 4 bytes at offset \(dataStart + 8), "
            + "but the file ends at \(dataStart + 9): the file is truncated")
    }

    @Test func readerRejectsWrittenFileCutShort() throws {
        let dir = TempDir()
        let p = dir.file("cut.safetensors")
        try SafeTensorsWriter.write([("w", Tensor.make(.float32, shape: [4]) { Double($0) })], to: p)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: p)))
        dir.write(Array(bytes.dropLast(3)), to: "cut.safetensors")
        guard case .dataPastEnd(_, "w", _, 16, _)? = openError(p) else { Issue.record("not rejected"); return }
    }

    @Test func readerRejectsOffsetsEndingBeforeTheyBegin() throws {
        let dir = TempDir()
        let header = "{\"a\":\(Self.entry("F32", [0], 8, 0))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        #expect(e == .invalidOffsets(path: p, name: "a", begin: 8, end: 0))
        #expect(e.description.contains("'a'"))
    }

    /// Entries of the wrong form; the message fragment says what is wrong.
    static let malformedEntries: [(String, String)] = [
        (#""x""#, "not a string"),
        (#"{"shape":[1],"data_offsets":[0,4]}"#, "no \"dtype\""),
        (#"{"dtype":"F32","data_offsets":[0,4]}"#, "no \"shape\""),
        (#"{"dtype":"F32","shape":[1]}"#, "no \"data_offsets\""),
        (#"{"dtype":4,"shape":[1],"data_offsets":[0,4]}"#, "must be a string"),
        (#"{"dtype":"F32","shape":1,"data_offsets":[0,4]}"#, "must be an array"),
        (#"{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}"#, "dimension 0"),
        (#"{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}"#, "not a whole number"),
        (#"{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}"#, "not a whole number"),
        (#"{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}"#, "too large"),
        (#"{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}"#, "two non-negative integers"),
        (#"{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}"#, "non-negative"),
        (#"{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, "twice"),
    ]

    @Test(arguments: malformedEntries)
    func readerRejectsMalformedEntry(entry: String, fragment: String) throws {
        let dir = TempDir()
        let p = dir.safetensors(header: "{\"t\":\(entry)}", data: [UInt8](repeating: 0, count: 4))
        let e = try #require(openError(p))
        guard case .invalidEntry(_, "t", 9, let detail) = e else { Issue.record("\(entry): got \(e)"); return }
        #expect(detail.contains(fragment), "\(detail)")
    }

    @Test func readerAcceptsEmptyTensorsAtTheSameOffset() throws {
        let dir = TempDir()
        let header = "{\"e1\":\(Self.entry("F32", [0], 0, 0)),\"a\":\(Self.entry("F32", [2], 0, 8)),"
            + "\"e2\":\(Self.entry("I8", [0, 5], 8, 8)),\"e0\":\(Self.entry("U8", [3, 0], 0, 0))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let file = try SafeTensorsFile(path: p)
        #expect(file.names == ["e1", "e0", "a", "e2"])
        #expect(try file.tensor(named: "e2").shape == [0, 5])
    }

    @Test func readerIgnoresUnknownEntryFields() throws {
        let dir = TempDir()
        let p = dir.safetensors(header: #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"note":[1,{"x":null}]}}"#,
                                data: [1, 2])
        #expect(try SafeTensorsFile(path: p).tensor(named: "a").scalars(as: UInt8.self) == [1, 2])
    }

    @Test func readerRejectsEveryTruncationOfAValidFile() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Package.fixture("all_dtypes.safetensors"))))
        let dir = TempDir()
        for length in 0..<bytes.count {
            let p = dir.write(Array(bytes[..<length]))
            #expect(openError(p) != nil, "a \(length)-byte prefix opened")
        }
    }

    @Test func readerSurvivesCorruptionOfAnyByte() throws {
        // Every byte of the header region replaced by a few troublesome values: the reader must
        // either throw or give a file whose tensors all read; it must never trap.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Package.fixture("all_dtypes.safetensors"))))
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        let dir = TempDir()
        for i in 0..<file.dataStart {
            for v: UInt8 in [0x00, 0x22, 0x5C, 0x39, 0xFF] where bytes[i] != v {
                var mutated = bytes
                mutated[i] = v
                let p = dir.write(mutated)
                if let f = try? SafeTensorsFile(path: p) {
                    #expect(throws: Never.self) { _ = try f.tensors() }
                }
            }
        }
    }

    @Test func messagesMakeControlCharactersInNamesVisible() throws {
        let dir = TempDir()
        let header = "{\"bad\\u001b[2Jname\\n\":\(Self.entry("F32", [3], 0, 8))}"
        let p = dir.safetensors(header: header, data: [UInt8](repeating: 0, count: 8))
        let e = try #require(openError(p))
        #expect(e.description.contains("'bad\\u{1b}[2Jname\\n'"))
        #expect(!e.description.contains("\u{1b}"))
    }
}
