import DLSupport
import DLTensor

extension TorchError {
    /// A zip reader's error about the archive at `path`, in `TorchError`'s words.
    package init(_ e: ZipError, path: String) {
        switch e {
        case .invalid(let offset, let detail): self = .invalidZip(path: path, offset: offset, detail: detail)
        case .entryOutsideFile(let entry, let offset, let n, let size):
            self = .entryOutsideFile(path: path, entry: entry, offset: offset, byteCount: n, fileSize: size)
        case .compressedEntry(let entry, let method): self = .compressedEntry(path: path, entry: entry, method: method)
        }
    }
}

/// The zip reader as `TorchFile` uses it: its errors as `TorchError`s.
struct TorchZip {
    let zip: ZipArchive

    init(file: MappedFile) throws(TorchError) {
        do { zip = try ZipArchive(file: file) } catch { throw TorchError(error, path: file.path) }
    }

    var path: String { zip.path }
    var entries: [ZipEntry] { zip.entries }
    func entry(named name: String) -> ZipEntry? { zip.entry(named: name) }

    func bytes(of entry: ZipEntry) throws(TorchError) -> UnsafeRawBufferPointer {
        do { return try zip.bytes(of: entry) } catch { throw TorchError(error, path: path) }
    }

    func contents(of entry: ZipEntry) throws(TorchError) -> [UInt8] {
        do { return try zip.contents(of: entry) } catch { throw TorchError(error, path: path) }
    }
}

/// Maps `path`, turning the mapping's error into a `TorchError`.
func openMapped(_ path: String) throws(TorchError) -> MappedFile {
    do { return try MappedFile(path: path) } catch let e as MappedFileError {
        throw .cannotOpen(path: path, reason: e.reason)
    } catch {
        throw .cannotOpen(path: path, reason: "\(error)")
    }
}
