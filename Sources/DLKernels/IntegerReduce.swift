/// Sums of 8-bit integers over the middle of a tensor viewed as outer × reduced × inner (the
/// spatial axes of an NHWC MEAN), in integers: exact, so equal to the float64 sum of the same
/// values in any order (every partial sum is an integer far below 2^53).
public enum IntegerReduce {
    /// out[o·inner + i] = Σ_r (x[(o·reduced + r)·inner + i] − offset) as Double, x int8
    /// (`signed`) or uint8 bytes. The lanes add in int32 while 255·reduced fits, else in Int64.
    public static func centredSum(_ x: UnsafeRawBufferPointer, signed: Bool, outer: Int, reduced: Int, inner: Int, offset: Int32,
                                  into out: UnsafeMutableBufferPointer<Double>) {
        precondition(x.count >= outer * reduced * inner && out.count >= outer * inner, "IntegerReduce.centredSum: buffers too small")
        guard inner > 0 else { return }
        var acc = [Int64](repeating: 0, count: inner)
        var lanes = [Int32](repeating: 0, count: inner)
        let chunk = 1 << 23  // 255 · 2^23 < 2^31
        for o in 0..<outer {
            for i in 0..<inner { acc[i] = 0 }
            var r0 = 0
            while r0 < reduced {
                let r1 = Swift.min(reduced, r0 + chunk)
                lanes.withUnsafeMutableBufferPointer { l in
                    for i in 0..<inner { l[i] = 0 }
                    if signed {
                        let p = x.bindMemory(to: Int8.self)
                        for r in r0..<r1 {
                            let row = (o * reduced + r) * inner
                            for i in 0..<inner { l[i] &+= Int32(p[row + i]) }
                        }
                    } else {
                        let p = x.bindMemory(to: UInt8.self)
                        for r in r0..<r1 {
                            let row = (o * reduced + r) * inner
                            for i in 0..<inner { l[i] &+= Int32(p[row + i]) }
                        }
                    }
                }
                for i in 0..<inner { acc[i] += Int64(lanes[i]) }
                r0 = r1
            }
            let shift = Int64(offset) * Int64(reduced)
            for i in 0..<inner { out[o * inner + i] = Double(acc[i] - shift) }
        }
    }
}
