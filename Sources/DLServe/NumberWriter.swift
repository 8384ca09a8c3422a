// Shortest round-trip float text from the Swift runtime, written into our own buffer. These are
// the exported, ABI-stable entry points behind `Float.description` and `Double.description`
// (libswiftCore keeps them for code the standard library inlined into clients); calling them
// directly gives the same text without a `String` per value. They want 32 bytes of buffer and
// (as of Swift 6.3) leave the positions of some "0" digits unwritten, expecting the buffer to
// hold ASCII "0" there already: `write` fills it first. ServeCodecTests checks the text against
// `description` for random bit patterns of both types.
@_silgen_name("swift_float32ToString")
private func runtimeFloat32ToString(_ buffer: UnsafeMutablePointer<UInt8>, _ length: UInt, _ value: Float, _ debug: Bool) -> UInt64

@_silgen_name("swift_float64ToString")
private func runtimeFloat64ToString(_ buffer: UnsafeMutablePointer<UInt8>, _ length: UInt, _ value: Double, _ debug: Bool) -> UInt64

/// Writes numbers as JSON text for answers, straight into the output bytes, with no allocation
/// per value: values are formatted into a scratch block that is appended to the output when full.
enum NumberWriter {
    /// Room for one value and its separator: the runtime formatters want 32 bytes of buffer
    /// (the longest text, "-2.2250738585072014e-308", is 24).
    static let slot = 40
    /// Values formatted per scratch block.
    static let block = 2048

    /// Appends `values` comma separated, each written by `write` at a pointer with `slot` bytes of
    /// room (returning how many it wrote).
    @inline(__always)
    static func append<T>(
        _ values: UnsafeBufferPointer<T>, to out: inout [UInt8], _ write: (T, UnsafeMutablePointer<UInt8>) -> Int
    ) {
        guard !values.isEmpty else { return }
        out.reserveCapacity(out.count + values.count * 12)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: block * slot)
        scratch.initialize(repeating: 0, count: block * slot)
        defer { scratch.deallocate() }
        var i = 0
        while i < values.count {
            let end = min(values.count, i + block)
            var p = scratch
            while i < end {
                if i > 0 {
                    p.pointee = UInt8(ascii: ",")
                    p += 1
                }
                p += write(values[i], p)
                i += 1
            }
            out.append(contentsOf: UnsafeBufferPointer(start: scratch, count: p - scratch))
        }
    }

    /// A float in the shortest text that reads back to the same Float; NaN and the infinities as
    /// the JSON strings "NaN", "Infinity", "-Infinity".
    @inline(__always)
    static func write(_ v: Float, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        guard v.isFinite else { return special(isNaN: v.isNaN, negative: v < 0, p) }
        if let n = ShortestFloat.write(v, p) { return n }
        p.update(repeating: UInt8(ascii: "0"), count: 32)
        return Int(truncatingIfNeeded: runtimeFloat32ToString(p, 32, v, false))
    }

    @inline(__always)
    static func write(_ v: Double, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        guard v.isFinite else { return special(isNaN: v.isNaN, negative: v < 0, p) }
        p.update(repeating: UInt8(ascii: "0"), count: 32)
        return Int(truncatingIfNeeded: runtimeFloat64ToString(p, 32, v, false))
    }

    static func special(isNaN: Bool, negative: Bool, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        let text: StaticString = isNaN ? #""NaN""# : negative ? #""-Infinity""# : #""Infinity""#
        p.update(from: text.utf8Start, count: text.utf8CodeUnitCount)
        return text.utf8CodeUnitCount
    }

    /// An integer in decimal.
    @inline(__always)
    static func write<I: FixedWidthInteger>(_ v: I, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        guard v < 0 else { return write(unsigned: UInt64(truncatingIfNeeded: v), p) }
        p.pointee = UInt8(ascii: "-")
        return 1 + write(unsigned: UInt64(truncatingIfNeeded: v.magnitude), p + 1)
    }

    /// `n` in decimal, two digits per step.
    @inline(__always)
    static func write(unsigned n: UInt64, _ p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = n
        let digits = digitCount(n)
        var q = p + digits
        while n >= 100 {
            let pair = Int(n % 100)
            n /= 100
            q -= 2
            q[0] = UInt8(truncatingIfNeeded: 48 + pair / 10)
            q[1] = UInt8(truncatingIfNeeded: 48 + pair % 10)
        }
        if n >= 10 {
            q -= 2
            q[0] = UInt8(truncatingIfNeeded: 48 + n / 10)
            q[1] = UInt8(truncatingIfNeeded: 48 + n % 10)
        } else {
            q -= 1
            q[0] = UInt8(truncatingIfNeeded: 48 + n)
        }
        return digits
    }

    @inline(__always)
    static func digitCount(_ n: UInt64) -> Int {
        var count = 1
        var x = n
        while x >= 10_000 { x /= 10_000; count += 4 }
        while x >= 10 { x /= 10; count += 1 }
        return count
    }
}
