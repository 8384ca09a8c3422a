import DLTensor
import Testing

@Suite struct LowPrecisionTests {
    @Test(arguments: [
        (DType.float8e4m3fn, 448.0, UInt8(0x7E)), (.float8e4m3fn, -2.0, 0xC0), (.float8e4m3fn, 0.015625, 0x08),
        (.float8e4m3fnuz, 240.0, 0x7F), (.float8e5m2, 57344.0, 0x7B), (.float8e5m2fnuz, 1.0, 0x40),
        (.float4e2m1, 6.0, 0x7), (.float4e2m1, -0.5, 0x9),
    ])
    func largestAndExactValuesRoundTrip(dtype: DType, value: Double, code: UInt8) {
        #expect(LowPrecision.encode(value, dtype) == code)
        #expect(LowPrecision.decode(code, dtype) == value)
    }

    @Test func ties_roundToTheEvenCode() {
        // 1.0 is 0x38 and 1.125 is 0x39 in E4M3FN: the midpoint goes to the even code.
        #expect(LowPrecision.encode(1.0625, .float8e4m3fn) == 0x38)
        // 1.125 and 1.25: the midpoint 1.1875 goes to 1.25 (0x3A, even).
        #expect(LowPrecision.encode(1.1875, .float8e4m3fn) == 0x3A)
    }

    @Test func overflow_saturatesOrBecomesNaNOrInfinity() {
        #expect(LowPrecision.encode(1e6, .float8e4m3fn, saturate: true) == 0x7E)
        #expect(LowPrecision.decode(LowPrecision.encode(1e6, .float8e4m3fn, saturate: false), .float8e4m3fn).isNaN)
        #expect(LowPrecision.decode(LowPrecision.encode(1e6, .float8e5m2, saturate: false), .float8e5m2) == .infinity)
        #expect(LowPrecision.encode(-.infinity, .float8e5m2, saturate: true) == 0xFB)
    }

    @Test func fnuzFormats_haveNoNegativeZero() {
        #expect(LowPrecision.encode(-0.0, .float8e4m3fnuz) == 0)
        #expect(LowPrecision.decode(0x80, .float8e4m3fnuz).isNaN)
        #expect(LowPrecision.encode(-0.0, .float8e4m3fn) == 0x80)
    }

    @Test func e8m0_isAPowerOfTwoScale() {
        #expect(LowPrecision.decode(127, .float8e8m0) == 1)
        #expect(LowPrecision.decode(0, .float8e8m0) == 0x1p-127)
        #expect(LowPrecision.decode(0xFF, .float8e8m0).isNaN)
    }

    @Test func subByteIntegers_wrapAndSignExtendOnConversion() {
        let t = Tensor(shape: [4], scalars: [Float(7), -8, 9, 3.9]).converted(to: .int4)
        #expect(t.doubles() == [7, -8, -7, 3])
        #expect(DType.int4.packedByteCount(5) == 3 && DType.uint2.packedByteCount(5) == 2)
    }
}
