#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A whole file mapped read-only into memory. Tensors may view parts of it; the mapping lives
/// until the last view is gone.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let byteCount: Int
    /// Start of the mapping; nil for an empty file.
    public let base: UnsafeRawPointer?
    /// The file, kept open read-only as long as the mapping lives: writers copy mapped tensors
    /// from it inside the kernel (`AtomicFileWriter.copy`) instead of through the mapping.
    public let fileDescriptor: Int32

    /// Maps `path` read-only.
    /// - Throws: `MappedFileError` naming the file when it cannot be opened, sized or mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MappedFileError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MappedFileError.cannotOpen(path: path, reason: reason)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw MappedFileError.cannotOpen(path: path, reason: "not a regular file")
        }
        byteCount = Int(st.st_size)
        fileDescriptor = fd
        if byteCount == 0 {
            base = nil
            return
        }
        let p = mmap(nil, byteCount, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MappedFileError.cannotMap(path: path, reason: reason)
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
        close(fileDescriptor)
    }

    /// All bytes of the file.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: byteCount) }
}

public enum MappedFileError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case cannotMap(path: String, reason: String)

    /// The message without the path: "cannot open: No such file or directory".
    public var reason: String {
        switch self {
        case .cannotOpen(_, let r): "cannot open: \(r)"
        case .cannotMap(_, let r): "cannot map into memory: \(r)"
        }
    }

    public var description: String {
        switch self {
        case .cannotOpen(let p, let r): "\(p): cannot open: \(r)"
        case .cannotMap(let p, let r): "\(p): cannot map into memory: \(r)"
        }
    }
}
