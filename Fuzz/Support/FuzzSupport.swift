import Foundation

/// Helpers shared by the fuzz targets (built only with `DLKIT_FUZZ=1`, see scripts/fuzz).
public enum FuzzSupport {
    /// Writes the input to a per-process scratch file (in /dev/shm when there is one) so the
    /// readers that map files see it through their ordinary entry point. Returns its path.
    public static func scratchFile(_ data: UnsafeRawBufferPointer, suffix: String) -> String? {
        let dir = scratchDirectory()
        let path = "\(dir)/dlkit-fuzz-\(getpid())\(suffix)"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var off = 0
        while off < data.count {
            let n = write(fd, data.baseAddress! + off, data.count - off)
            if n <= 0 { return nil }
            off += n
        }
        return path
    }
}

extension FuzzSupport {
    /// Where scratch files go: /dev/shm when there is one.
    public static func scratchDirectory() -> String {
        FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    }
}

/// The decisions of a structure-aware fuzz target, read from libFuzzer's bytes: each choice
/// consumes one or two bytes; once the bytes run out every choice is the first option (and no
/// rare branch is taken), so any
/// input is a complete, finite structure and small mutations of the bytes make small changes
/// to it.
public struct FuzzChoices {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var exhausted: Bool { index >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// A number in 0..<n (0 when n <= 1).
    public mutating func below(_ n: Int) -> Int {
        guard n > 1 else { return 0 }
        if n <= 256 { return Int(byte()) % n }
        return (Int(byte()) << 8 | Int(byte())) % n
    }

    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// True about once in `n` choices; false once the bytes run out (the rare branch is the odd one).
    public mutating func oneIn(_ n: Int) -> Bool { !exhausted && below(n) == 0 }

    public mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }

    /// An integer a hostile file might hold: small ones mostly, then the edges.
    public mutating func oddInt() -> Int {
        pick([0, 1, 2, 3, 1, 2, 4, -1, -2, 5, 7, 8, 16, 64, 255, 256, 65535, 1 << 31, (1 << 31) - 1, -(1 << 31), 1 << 40,
              1 << 62, Int.max, Int.min, Int(byte())])
    }

    public mutating func oddDouble() -> Double {
        pick([0, 1, -1, 0.5, 1e-3, 1e-7, -0.0, 2.5, 1e30, -1e30, 1e308, -1e308, .nan, .infinity, -.infinity,
              Double(Int8(bitPattern: byte())) / 8])
    }
}
