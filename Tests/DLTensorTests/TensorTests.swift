import DLSupport
import DLTensor
import DLTestSupport
import Foundation
import Testing

struct TensorTests {
    @Test func scalarsRoundTripInRowMajorOrder() {
        let t = Tensor(shape: [2, 3], scalars: [Float](arrayLiteral: 1, 2, 3, 4, 5, 6))
        #expect(t.dtype == .float32)
        #expect(t.elementCount == 6 && t.byteCount == 24)
        #expect(t.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
    }

    @Test func copiesShareStorageUntilOneWrites() {
        let a = Tensor(shape: [3], scalars: [Int64](arrayLiteral: 1, 2, 3))
        var b = a
        b.withUnsafeMutableBufferPointer(as: Int64.self) { $0[0] = 99 }
        #expect(a.scalars(as: Int64.self) == [1, 2, 3])
        #expect(b.scalars(as: Int64.self) == [99, 2, 3])
    }

    @Test func storageIsSixtyFourByteAligned() {
        let t = Tensor(zeros: .float32, shape: [7])
        t.withUnsafeBytes { #expect(Int(bitPattern: $0.baseAddress) % 64 == 0) }
    }

    @Test func bytesInitialiserRejectsWrongByteCount() {
        let bytes: [UInt8] = [0, 0, 0]
        var caught: TensorError?
        bytes.withUnsafeBytes { b in
            do throws(TensorError) { _ = try Tensor(dtype: .float32, shape: [1], bytes: b) } catch { caught = error }
        }
        #expect(caught == .byteCountMismatch(shape: [1], dtype: .float32, expected: 4, actual: 3))
    }

    @Test func mappedViewsReadTheFileAndCopyOnWrite() throws {
        let dir = TemporaryFolder()
        let path = dir.write([0, 0, 0, 0] + [0, 0, 0x80, 0x3F], to: "f.bin")
        let file = try MappedFile(path: path)
        var t = try Tensor(dtype: .float32, shape: [1], viewing: file, offset: 4)
        #expect(t.isMapped)
        #expect(t.scalars(as: Float.self) == [1])
        t.withUnsafeMutableBufferPointer(as: Float.self) { $0[0] = 2 }
        #expect(!t.isMapped)
        #expect(t.scalars(as: Float.self) == [2])
    }

    @Test func mappedViewPastTheEndIsRefused() throws {
        let dir = TemporaryFolder()
        let file = try MappedFile(path: dir.write([1, 2, 3, 4], to: "f.bin"))
        #expect(throws: TensorError.self) { _ = try Tensor(dtype: .float32, shape: [2], viewing: file, offset: 0) }
        #expect(throws: TensorError.self) { _ = try Tensor(dtype: .float32, shape: [1], viewing: file, offset: 1 << 62) }
    }

    @Test func reshapeKeepsElementsAndRefusesOtherCounts() throws {
        let t = Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        #expect(try t.reshaped(to: [3, 2]).shape == [3, 2])
        #expect(throws: TensorError.reshapeMismatch(from: [2, 3], to: [4])) { try t.reshaped(to: [4]) }
    }

    @Test(arguments: [DType.float64, .int8, .int32, .int64, .uint8, .uint64, .bool, .float16, .bfloat16])
    func conversionFromFloat32KeepsRepresentableValues(_ target: DType) {
        let t = Tensor(shape: [3], scalars: [Float](arrayLiteral: 0, 1, 2))
        let back = t.converted(to: target).converted(to: .float32)
        let expected: [Float] = target == .bool ? [0, 1, 1] : [0, 1, 2]
        #expect(back.scalars(as: Float.self) == expected)
    }

    @Test func halfConversionIsExactForEveryHalfValue() {
        for bits in UInt16.min...UInt16.max {
            let f = HalfConversion.float(fromHalfBits: bits)
            if f.isNaN { continue }
            #expect(HalfConversion.halfBits(from: f) == bits)
        }
        #expect(HalfConversion.halfBits(from: 65520) == 0x7C00)  // rounds to infinity
        #expect(HalfConversion.halfBits(from: 1 + 1.0 / 2048) == 0x3C00)  // tie rounds to even
    }

    @Test func bfloat16RoundsToNearestEven() {
        #expect(BFloat16(Float(1)).bitPattern == 0x3F80)
        #expect(BFloat16(Float(bitPattern: 0x3F80_8000)).bitPattern == 0x3F80)  // tie, even stays
        #expect(BFloat16(Float(bitPattern: 0x3F81_8000)).bitPattern == 0x3F82)  // tie, odd goes up
        #expect(BFloat16(Float.nan).floatValue.isNaN)
    }

    @Test func namedTensorsKeepInsertionOrder() {
        var n = NamedTensors()
        n["b"] = Tensor(scalar: Float(1))
        n["a"] = Tensor(scalar: Float(2))
        n["b"] = Tensor(scalar: Float(3))
        #expect(n.names == ["b", "a"])
        n["b"] = nil
        #expect(n.names == ["a"])
    }
}

struct ByteReaderTests {
    @Test func readsLittleEndianAndRefusesToPassTheEnd() throws {
        let bytes: [UInt8] = [1, 0, 0, 0, 2]
        try bytes.withUnsafeBytes { (raw) throws in
            var r = ByteReader(raw)
            #expect(try r.readLE(UInt32.self) == 1)
            #expect(throws: ByteReaderError.truncated(offset: 4, wanted: 2, available: 1)) { try r.readLE(UInt16.self) }
            #expect(try r.readUInt8() == 2)
            #expect(r.isAtEnd)
        }
    }
}

struct AtomicFileTests {
    @Test func abandonedWriteLeavesTheOldFileAndNoTemporary() throws {
        let dir = TemporaryFolder()
        let path = dir.write([1, 2, 3], to: "out.bin")
        let w = try AtomicFileWriter(path: path)
        try w.write([9, 9])
        w.abandon()
        #expect(dir.contents() == ["out.bin"])
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
    }

    @Test func commitReplacesTheFile() throws {
        let dir = TemporaryFolder()
        let path = dir.file("out.bin")
        try AtomicFileWriter.write([7], to: path)
        #expect(FileManager.default.contents(atPath: path) == Data([7]))
        #expect(dir.contents() == ["out.bin"])
    }

    @Test func unwritableFolderIsACreateError() {
        #expect(throws: AtomicFileError.self) { try AtomicFileWriter.write([1], to: "/nonexistent-dir/x.bin") }
    }
}

struct JSONTests {
    @Test(arguments: [Float(0.1), 1e-5, 3.4028235e38, -0.0, 1, 16777216, Float.leastNormalMagnitude, Float.leastNonzeroMagnitude])
    func floatsAreWrittenInAFormThatReadsBackExactly(_ v: Float) throws {
        let text = JSON.float(v).serialized()
        #expect(Float(text) == v)
    }

    @Test func nonFiniteFloatsBecomeStrings() {
        #expect(JSON.array([.float(Float.nan), .float(Float.infinity), .float(-Double.infinity)]).serialized()
                == #"["NaN","Infinity","-Infinity"]"#)
    }

    @Test func writtenStringsParseBackTheSame() throws {
        let s = "quote \" back \\ nl \n ctl \u{01} é 🧠"
        let text = JSON.object([("k", .string(s))]).serialized()
        #expect(try parseJSON(text)["k"] == .string(s))
    }

    @Test func parserRefusesDeepNesting() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONSyntaxError.self) { try parseJSON(deep) }
    }
}

