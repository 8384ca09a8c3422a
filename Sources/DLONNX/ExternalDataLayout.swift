#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLSupport
import DLTensor

/// Where each initializer goes in an ONNX external data file: tensors of at least `threshold`
/// bytes, in graph order, each at an offset that is a multiple of 4096 (zero padding between).
/// String tensors, smaller tensors, and integer tensors of at most `inlineIntegerBytes` stay
/// inline in the model: those are shapes, axes and pads, which ONNX Runtime and onnx's shape
/// inference read while loading and cannot read from external data ("Cannot parse data from
/// external tensors").
struct ExternalDataLayout {
    struct Entry {
        let name: String
        let tensor: Tensor
        let offset: Int
    }

    let location: String
    private(set) var entries: [Entry] = []
    private(set) var offsets: [String: (location: String, offset: Int)] = [:]
    /// The data file's size.
    private(set) var byteCount = 0

    init(_ tensors: NamedTensors, location: String, threshold: Int) {
        self.location = location
        let align = ONNXWriteOptions.dataAlignment
        for (name, t) in tensors where t.dtype != .string && t.dtype.bitWidth >= 8 && t.byteCount >= threshold && t.byteCount > 0 {
            if t.dtype.isInteger && t.byteCount <= Self.inlineIntegerBytes { continue }
            let offset = (byteCount + align - 1) / align * align
            entries.append(Entry(name: name, tensor: t, offset: offset))
            offsets[name] = (location, offset)
            byteCount = offset + t.byteCount
        }
    }

    /// Integer tensors up to this size stay inline whatever the threshold.
    static let inlineIntegerBytes = 1024

    /// Bytes handed to one `write` call: large enough to keep the syscall count low, small enough
    /// that mapped pages already written can be given back as the copy goes.
    static let chunk = 8 << 20

    /// Writes the data file: each tensor's bytes straight from its storage, zeros between.
    ///
    /// Tensors that view a memory-mapped file (a checkpoint, safetensors, another model's external
    /// data) are read sequentially and their pages released once written (`MADV_DONTNEED` on a
    /// read-only file mapping only drops this process's copy; the file is re-read if touched
    /// again), so converting gigabytes of weights keeps resident memory flat.
    func stream(to out: AtomicFileWriter) throws(AtomicFileError) {
        let zeros = [UInt8](repeating: 0, count: ONNXWriteOptions.dataAlignment)
        var position = 0
        for e in entries {
            while position < e.offset {
                let n = min(e.offset - position, zeros.count)
                var failure: AtomicFileError?
                zeros.withUnsafeBytes { z in
                    do throws(AtomicFileError) { try out.write(UnsafeRawBufferPointer(rebasing: z[0..<n])) } catch { failure = error }
                }
                if let failure { throw failure }
                position += n
            }
            var failure: AtomicFileError?
            e.tensor.withUnsafeBytes { bytes in
                let mapped = e.tensor.isMapped
                if mapped { advise(bytes, MADV_SEQUENTIAL) }
                var done = 0
                while done < bytes.count && failure == nil {
                    let part = UnsafeRawBufferPointer(rebasing: bytes[done..<min(done + Self.chunk, bytes.count)])
                    do throws(AtomicFileError) { try out.write(part) } catch { failure = error }
                    if mapped { advise(part, MADV_DONTNEED) }
                    done += part.count
                }
            }
            if let failure { throw failure }
            position = e.offset + e.tensor.byteCount
        }
    }

    /// `madvise` on the whole pages inside `range` (never a page the range only partly covers,
    /// which may hold bytes of a tensor still in use).
    private func advise(_ range: UnsafeRawBufferPointer, _ advice: Int32) {
        guard let base = range.baseAddress, range.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + range.count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, advice)
    }
}
