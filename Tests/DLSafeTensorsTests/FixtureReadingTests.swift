import DLSafeTensors
import DLTensor
import Foundation
import Testing

/// Reads the files scripts/fixtures/make_safetensors.py writes; the expected values follow the
/// formulas in that script's docstring.
@Suite struct FixtureReadingTests {
    /// (name, dtype, element i of the [2, 3] grid).
    static let grids: [(String, DType, @Sendable (Int) -> Double)] = [
        ("f16", .float16, { Double($0 - 2) * 0.5 }),
        ("f32", .float32, { Double($0 - 2) * 0.5 }),
        ("f64", .float64, { Double($0 - 2) * 0.5 }),
        ("i8", .int8, { Double($0 - 3) }),
        ("i16", .int16, { Double($0 - 3) }),
        ("i32", .int32, { Double($0 - 3) }),
        ("i64", .int64, { Double($0 - 3) }),
        ("u8", .uint8, { Double($0 * 7) }),
        ("u16", .uint16, { Double($0 * 7) }),
        ("u32", .uint32, { Double($0 * 7) }),
        ("u64", .uint64, { Double($0 * 7) }),
        ("bool", .bool, { $0 % 2 == 1 ? 1 : 0 }),
    ]

    @Test func readsEveryNumpyDTypeWithShapesAndValues() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        for (name, dtype, f) in Self.grids {
            let e = try #require(file.entry(name), "missing \(name)")
            #expect(e.dtype == dtype, "\(name)")
            #expect(e.shape == [2, 3], "\(name)")
            #expect(e.byteCount == 6 * dtype.byteWidth, "\(name)")
            let t = try file.tensor(named: name)
            #expect(t.dtype == dtype && t.shape == [2, 3])
            #expect(t.doubles() == (0..<6).map(f), "\(name)")
        }
        #expect(try file.tensor(named: "i64_extremes").scalars(as: Int64.self) == [Int64.min, Int64.max])
        #expect(try file.tensor(named: "u64_extremes").scalars(as: UInt64.self) == [0, UInt64.max])
    }

    @Test func readsZeroRankAndEmptyTensors() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        let scalar = try file.tensor(named: "scalar")
        #expect(scalar.shape == [] && scalar.dtype == .float32)
        #expect(scalar.scalars(as: Float.self) == [3.25])
        let empty = try file.tensor(named: "empty")
        #expect(empty.shape == [0, 3] && empty.elementCount == 0 && empty.byteCount == 0)
        #expect(file.entry("empty")?.dataOffsets.isEmpty == true)
    }

    @Test func readsMetadata() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        #expect(file.metadata == ["format": "pt"])
    }

    @Test func namesFollowDataOffsetsAndTileTheDataSection() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        #expect(Set(file.names) == Set(Self.grids.map(\.0) + ["i64_extremes", "u64_extremes", "scalar", "empty"]))
        var end = 0
        for e in file.entries {
            #expect(e.dataOffsets.lowerBound == end, "\(e.name)")
            #expect(e.fileRange == (file.dataStart + e.dataOffsets.lowerBound)..<(file.dataStart + e.dataOffsets.upperBound))
            end = e.dataOffsets.upperBound
        }
        #expect(file.dataStart + end == file.fileSize)
        // The reference writer's order: widest first, then by name.
        #expect(file.names.prefix(3) == ["u64", "u64_extremes", "i64"])
        #expect(file.names.last == "bool")
    }

    @Test func alignedTensorsAreZeroCopyViewsOfTheMapping() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        for (name, t) in try file.tensors() {
            #expect(t.isMapped, "\(name) was copied although the reference writer aligns every tensor")
        }
        #expect(try file.tensors().map(\.name) == file.names)
    }

    @Test func readsBFloat16() throws {
        let file = try SafeTensorsFile(path: Package.fixture("bfloat16.safetensors"))
        let t = try file.tensor(named: "bf16")
        #expect(t.dtype == .bfloat16 && t.shape == [2, 2])
        #expect(t.scalars(as: BFloat16.self).map(\.bitPattern) == [0x3F80, 0xC020, 0x3E20, 0x477F])
        #expect(t.doubles() == [1.0, -2.5, 0.15625, 65280.0])
        #expect(file.metadata.isEmpty)
    }

    @Test func misalignedTensorsAreCopiedIntoAlignedStorage() throws {
        let file = try SafeTensorsFile(path: Package.fixture("unaligned.safetensors"))
        #expect(file.dataStart % 2 == 1)
        let a = try file.tensor(named: "a")
        let b = try file.tensor(named: "b")
        #expect(!a.isMapped && !b.isMapped)
        #expect(a.scalars(as: Float.self) == [1.5, -2.0, 4.0])
        #expect(b.scalars(as: Int16.self) == [-1, 300])
        // Typed pointers into the copies are aligned.
        a.withUnsafeBytes { #expect(Int(bitPattern: $0.baseAddress) % MemoryLayout<Float>.alignment == 0) }
    }

    @Test func readsAFileWithNoTensors() throws {
        let dir = TempDir()
        let p = dir.safetensors(header: "{}      ")
        let file = try SafeTensorsFile(path: p)
        #expect(file.names.isEmpty && file.metadata.isEmpty)
        #expect(try file.tensors().isEmpty)
    }

    @Test func lookingUpAMissingTensorNamesIt() throws {
        let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
        #expect(file.entry("nope") == nil)
        #expect(throws: SafeTensorsError.tensorNotFound(path: file.path, name: "nope")) {
            try file.tensor(named: "nope")
        }
    }

    @Test func viewsOutliveTheFileValue() throws {
        var t: Tensor?
        do {
            let file = try SafeTensorsFile(path: Package.fixture("all_dtypes.safetensors"))
            t = try file.tensor(named: "f32")
        }
        #expect(t?.scalars(as: Float.self) == [-1, -0.5, 0, 0.5, 1, 1.5])
    }
}
