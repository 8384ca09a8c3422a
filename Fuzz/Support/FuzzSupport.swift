import Foundation

/// Helpers shared by the fuzz targets (built only with `DLKIT_FUZZ=1`, see scripts/fuzz).
public enum FuzzSupport {
    /// Writes the input to a per-process scratch file (in /dev/shm when there is one) so the
    /// readers that map files see it through their ordinary entry point. Returns its path.
    public static func scratchFile(_ data: UnsafeRawBufferPointer, suffix: String) -> String? {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
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
