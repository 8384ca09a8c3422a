import CKernels

/// A byte-to-byte table applied to a buffer: what an 8-bit elementwise island becomes
/// (`ai.dlkit.LookupTable`).
public enum ByteLookup {
    /// `y[i] = table[x[i]]` for `i < count`; `table` holds 256 bytes. `x` and `y` may be the same.
    public static func apply(_ x: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<UInt8>, count: Int, table: UnsafePointer<UInt8>) {
        if CPUFeatures.avx512 {
            dlk_lookup8(x, count, table, y)
        } else {
            for i in 0..<count { y[i] = table[Int(x[i])] }
        }
    }
}
