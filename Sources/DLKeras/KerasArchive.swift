import DLSupport
import DLTensor

/// The entries of a `.keras` archive (a zip: `config.json`, `model.weights.h5`, `metadata.json`),
/// read through the one zip reader with its errors as `KerasError.archive`.
struct KerasArchive {
    let path: String
    private let zip: ZipArchive

    init(path: String) throws(KerasError) {
        self.path = path
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw .archive(path: path, reason: "cannot open: \(error)") }
        do { zip = try ZipArchive(file: file) } catch { throw .archive(path: path, reason: Self.reason(error)) }
    }

    /// The bytes of an entry (inflated when deflated), nil when the archive has no such entry.
    func entry(_ name: String) throws(KerasError) -> [UInt8]? {
        guard let e = zip.entry(named: name) else { return nil }
        do { return try zip.contents(of: e) } catch { throw .archive(path: path, reason: Self.reason(error)) }
    }

    private static func reason(_ e: ZipError) -> String {
        switch e {
        case .invalid(let offset, let detail): "broken zip at offset \(offset): \(detail)"
        case .entryOutsideFile(let entry, let offset, let n, let size):
            "entry '\(entry)': \(n) bytes at offset \(offset) run past the end of the file (\(size) bytes; truncated?)"
        case .compressedEntry(let entry, let method): "entry '\(entry)' is compressed with method \(method), which is not deflate"
        }
    }
}

extension KerasFile {
    /// True when `file` is a zip whose central directory names `config.json` and
    /// `model.weights.h5` (a `.keras` archive).
    package static func isKerasArchive(_ file: MappedFile) -> Bool {
        guard let zip = try? ZipArchive(file: file) else { return false }
        return zip.entry(named: "config.json") != nil && zip.entry(named: "model.weights.h5") != nil
    }
}
