#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hints for bytes of a read-only file mapping (the bytes of a tensor whose `isMapped` is true).
package enum MappedPages {
    /// Drops the whole pages inside `bytes` from this process's resident set. The mapping stays
    /// valid: a later read faults the pages back in from the file. Writers streaming a mapped
    /// tensor to another file call this behind themselves, so converting a large file does not
    /// keep all of it resident. Only for read-only file mappings: anonymous memory would be zeroed.
    public static func release(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Int(getpagesize())
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes.count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_DONTNEED)
    }
}

extension Tensor {
    /// Where a memory-mapped tensor's bytes are: its file and their offset in it; nil for tensors
    /// in owned memory. Writers use it to copy file to file without touching the mapping.
    public var mappedSource: (file: MappedFile, offset: Int)? { storage.mappedSource }
}
