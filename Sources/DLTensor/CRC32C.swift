/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial and final value all ones), the
/// checksum of TFRecord framing, TensorFlow's tensor bundles and leveldb tables.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The checksum of `bytes`, continuing from `crc` (the value a previous call returned).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }

    /// The masked form TensorFlow stores, so that a CRC of data holding CRCs stays well spread:
    /// rotate right by 15 bits and add 0xa282ead8.
    public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

    /// The stored masked value back to the CRC.
    public static func unmasked(_ m: UInt32) -> UInt32 {
        let r = m &- 0xA282_EAD8
        return (r >> 17) | (r << 15)
    }
}
