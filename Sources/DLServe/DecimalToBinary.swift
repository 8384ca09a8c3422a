/// Decimal to binary floating point for the numbers Clinger's fast path cannot take (more than
/// 2^53 in the digits, or a power of ten past 10^22), correctly rounded, without `strtod`.
///
/// `w × 10^q = w × 5^q × 2^q`: `w` shifted left until its top bit is set, times the 128-bit
/// significand of 5^q from `PowersOfFive` (within one unit of the truth), gives the top 128 bits
/// of the product within 2^64 + 1 units of their true value when only the table's high word is
/// used, and within 2 units when its low word is added. The result rounds one way or the other
/// only at the halfway point between two floats, so whenever the computed bits below the
/// float's last place are that close to half, the answer is nil and the caller asks `strtod`;
/// everywhere else the rounding is certain. Subnormal and out-of-range results are nil too.
enum DecimalToBinary {
    /// The bits of `w × 10^q` (w > 0) rounded to nearest, ties to even, as a float with
    /// `fractionBits` stored fraction bits and exponent bias `bias` (52 and 1023 for Double, 23
    /// and 127 for Float), or nil when it is not certain here.
    @inline(__always)
    static func bits(_ w: UInt64, _ q: Int, fractionBits: Int, bias: Int) -> UInt64? {
        guard w != 0, q >= PowersOfFive.minExponent, q <= PowersOfFive.maxExponent else { return nil }
        let zeros = w.leadingZeroBitCount
        let wn = w << zeros
        let index = 2 * (q - PowersOfFive.minExponent)
        let (five, fiveLow) = PowersOfFive.table.withUnsafeBufferPointer { ($0[index], $0[index + 1]) }
        var (high, low) = wn.multipliedFullWidth(by: five)
        // Bits of `high` below the last place kept: the top bit and `fractionBits` more are kept.
        var top = Int(truncatingIfNeeded: high >> 63)
        var below = 62 - fractionBits + top
        var half = UInt64(1) << (below - 1)
        var tail = high & ((1 << below) - 1)
        let roundUp: Bool
        if tail &- (half &- 2) < 4 {
            // Within two units of `high` from half: add the low word's product and look again.
            let (extra, _) = wn.multipliedFullWidth(by: fiveLow)
            let (sum, carry) = low.addingReportingOverflow(extra)
            low = sum
            if carry { high &+= 1 }
            top = Int(truncatingIfNeeded: high >> 63)
            below = 62 - fractionBits + top
            half = UInt64(1) << (below - 1)
            tail = high & ((1 << below) - 1)
            // Now within 2 units of `low`: undecided when (tail, low) is within 2 of (half, 0).
            if tail == half {
                guard low > 2 else { return nil }
                roundUp = true
            } else if tail == half - 1 {
                guard low < UInt64.max - 1 else { return nil }
                roundUp = false
            } else {
                roundUp = tail > half
            }
        } else {
            roundUp = tail > half
        }
        var m = high >> below  // fractionBits + 1 bits, the top one set
        // The value's top bit stands at 2^(floor(q × log2 10) + 63 + top - zeros).
        var e = ((q &* 217_706) >> 16) + 63 + top - zeros + bias
        if roundUp {
            m += 1
            if m >> (fractionBits + 1) != 0 {
                m >>= 1
                e += 1
            }
        }
        guard e >= 1, e <= 2 * bias else { return nil }
        return UInt64(e) << fractionBits | (m & ((1 << fractionBits) - 1))
    }
}
