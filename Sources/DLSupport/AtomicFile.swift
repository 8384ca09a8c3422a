#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that it appears whole or not at all: the bytes go to a temporary file in the
/// same folder, which is synced and then renamed over the destination. On any failure the
/// temporary file is removed and the destination is untouched.
package final class AtomicFileWriter {
    package let path: String
    private let tempPath: String
    private var fd: Int32
    private var finished = false
    package private(set) var bytesWritten = 0

    /// Opens a temporary file beside `path`.
    package init(path: String) throws(AtomicFileError) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array("\(dir.isEmpty ? "/" : dir)/.\(base).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw .cannotCreate(path: path, reason: String(cString: strerror(errno)))
        }
        self.fd = fd
        tempPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        fchmod(fd, 0o644)
    }

    deinit {
        if !finished { abandon() }
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws(AtomicFileError) {
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                abandon()
                throw .writeFailed(path: path, reason: reason)
            }
            done += n
        }
        bytesWritten += done
        startWriteback(from: bytesWritten - done, count: done)
    }

    /// Appends `count` bytes of the open file `source` from `offset`, copied inside the kernel
    /// (`copy_file_range`) where the system can, otherwise read and written in pieces.
    package func copy(from source: Int32, offset: Int, count: Int) throws(AtomicFileError) {
        var done = 0
        if let copyFileRange = Self.copyFileRange {
            var inOffset = Int64(offset)
            while done < count {
                let n = copyFileRange(source, &inOffset, fd, nil, count - done, 0)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }  // unsupported for these files (or the source ended): fall back below
                startWriteback(from: bytesWritten + done, count: n)
                done += n
            }
            bytesWritten += done
        }
        guard done < count else { return }
        let chunk = 1 << 22
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        while done < count {
            let n = pread(source, buffer, min(chunk, count - done), off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = n == 0 ? "the source file ended early" : String(cString: strerror(errno))
                abandon()
                throw .writeFailed(path: path, reason: reason)
            }
            try write(UnsafeRawBufferPointer(start: buffer, count: n))
            done += n
        }
    }

    /// Starts writing `count` bytes at `offset` to disk without waiting (Linux `sync_file_range`
    /// with SYNC_FILE_RANGE_WRITE), so that the final fsync of a large file overlaps the copying
    /// instead of following it. Only for large pieces; a no-op where the call does not exist.
    private func startWriteback(from offset: Int, count: Int) {
        guard count >= 1 << 20, let f = Self.syncFileRange else { return }
        _ = f(fd, Int64(offset), Int64(count), 2)
    }

    private typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    private static let syncFileRange: SyncFileRange? = {
        #if os(Linux)
        guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sync_file_range") else { return nil }
        return unsafeBitCast(f, to: SyncFileRange.self)
        #else
        return nil
        #endif
    }()

    /// Linux's `copy_file_range`, looked up at run time (Glibc's module does not export it).
    private typealias CopyFileRange = @convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32, UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int
    private static let copyFileRange: CopyFileRange? = {
        #if os(Linux)
        guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "copy_file_range") else { return nil }
        return unsafeBitCast(f, to: CopyFileRange.self)
        #else
        return nil
        #endif
    }()

    package func write(_ bytes: [UInt8]) throws(AtomicFileError) {
        var failure: AtomicFileError?
        bytes.withUnsafeBytes { b in
            do throws(AtomicFileError) { try self.write(b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    package func write(_ string: String) throws(AtomicFileError) {
        try write(Array(string.utf8))
    }

    /// Syncs and renames the temporary file into place.
    package func commit() throws(AtomicFileError) {
        guard !finished else { return }
        if fsync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            abandon()
            throw .writeFailed(path: path, reason: reason)
        }
        close(fd)
        finished = true
        if rename(tempPath, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tempPath)
            throw .writeFailed(path: path, reason: reason)
        }
    }

    /// Removes the temporary file; the destination stays as it was.
    package func abandon() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(tempPath)
    }

    /// Writes `bytes` to `path` atomically.
    package static func write(_ bytes: [UInt8], to path: String) throws(AtomicFileError) {
        let w = try AtomicFileWriter(path: path)
        try w.write(bytes)
        try w.commit()
    }
}

package enum AtomicFileError: Error, CustomStringConvertible, Equatable {
    case cannotCreate(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    package var description: String {
        switch self {
        case .cannotCreate(let p, let r): "\(p): cannot create: \(r)"
        case .writeFailed(let p, let r): "\(p): write failed: \(r); the file was left as it was"
        }
    }
}

@inline(__always)
private func systemWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
