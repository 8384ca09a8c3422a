import DLTensor

/// A `torch.save` or `torch.jit.save` file, opened without running any of its code.
///
/// ```swift
/// let file = try TorchFile(path: "checkpoint.pt")
/// for (name, t) in try file.stateDict(key: "model") { print(name, t.shape) }
/// ```
///
/// Opening maps the file and reads its pickle with the restricted `Unpickler`; tensors are
/// records until asked for, so listing a 1 GB file reads only its pickle. Storage bytes of zip
/// archives are viewed in place when the tensor is contiguous, aligned and little-endian.
///
/// Formats, told apart by content:
/// - zip (PyTorch 1.6+): `<archive>/data.pkl` and `<archive>/data/<key>` storages, read through
///   the central directory; `<archive>/byteorder` honoured.
/// - TorchScript (`torch.jit.save`): the same zip with `code/` and `constants.pkl`; `data.pkl`
///   builds `__torch__.*` module objects; `stateDict` names their parameters and buffers as
///   `torch.jit.load(f).state_dict()` does, using the `__parameters__`/`__buffers__` lists of
///   each class in `code/`.
/// - legacy (before 1.6, also Python 2, or `_use_new_zipfile_serialization=False`): five pickles
///   (magic number, protocol 1001, system info, the object, storage keys) of protocol 0, 1 or 2,
///   then each storage as an 8-byte element count and its bytes. Storages saved on `cuda:N` read
///   to the CPU; torch <= 0.4 storage views (view_metadata) read as slices of their root storage.
public struct TorchFile: Sendable {
    public enum Format: String, Sendable {
        case zip
        case legacy
        case torchScript = "torchscript"
    }

    public let path: String
    public let format: Format
    /// The saved object.
    public let root: TorchValue
    /// True when storages hold big-endian elements (converted on read).
    public let bigEndian: Bool

    let file: MappedFile
    let storages: [String: StorageLocation]
    let scriptClasses: [String: ScriptClass]

    struct StorageLocation: Sendable {
        var entry: String
        var offset: Int
        var byteCount: Int
        var method: Int
    }

    /// The parameters and buffers a TorchScript class declares, in order.
    struct ScriptClass: Sendable {
        var parameters: [String] = []
        var buffers: [String] = []
    }

    /// Maps and reads the file at `path`.
    public init(path: String) throws(TorchError) {
        try self.init(file: try openMapped(path))
    }

    /// Reads an already mapped file.
    public init(file: MappedFile) throws(TorchError) {
        self.file = file
        path = file.path
        let b = file.bytes
        if b.count >= 4, b[0] == 0x50, b[1] == 0x4B, b[2] == 0x03, b[3] == 0x04 {
            let zip = try TorchZip(file: file)
            let r = try Self.readZip(zip)
            format = r.format
            root = r.root
            bigEndian = r.bigEndian
            storages = r.storages
            scriptClasses = r.classes
        } else if Self.startsLegacy(b) {
            let r = try Self.readLegacy(file)
            format = .legacy
            root = r.root
            bigEndian = r.bigEndian
            storages = r.storages
            scriptClasses = [:]
        } else {
            throw .notTorchFile(path: path, detail: "it is neither a zip archive nor a legacy torch.save pickle")
        }
    }

    // MARK: zip

    private static func readZip(_ zip: TorchZip) throws(TorchError) -> (
        format: Format, root: TorchValue, bigEndian: Bool, storages: [String: StorageLocation], classes: [String: ScriptClass]
    ) {
        let path = zip.path
        // The archive folder: where `data.pkl` is (torch names it after the file; any name goes).
        let candidates = zip.entries.filter { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }
        guard let pkl = candidates.min(by: { $0.name.count < $1.name.count }) else {
            throw .notTorchFile(path: path, detail: "the zip archive has no data.pkl (is it a .keras, .npz or other zip?)")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        let isScript = zip.entry(named: prefix + "constants.pkl") != nil
            || zip.entries.contains { $0.name.hasPrefix(prefix + "code/") }

        var bigEndian = false
        if let bo = zip.entry(named: prefix + "byteorder") {
            let text = String(decoding: try zip.contents(of: bo), as: UTF8.self).trimming([" ", "\n", "\r", "\t"])
            switch text {
            case "little": break
            case "big": bigEndian = true
            default: throw .invalidZip(path: path, offset: bo.dataOffset, detail: "byteorder says '\(text.prefix(20))', not 'little' or 'big'")
            }
        }
        var storages: [String: StorageLocation] = [:]
        let dataPrefix = prefix + "data/"
        for e in zip.entries where e.name.hasPrefix(dataPrefix) {
            let key = String(e.name.dropFirst(dataPrefix.count))
            storages[key] = StorageLocation(entry: e.name, offset: e.dataOffset, byteCount: e.size, method: e.method)
        }
        // torch stores data.pkl; an archive re-zipped with compression still reads (inflated copy).
        let root: TorchValue
        if pkl.method == 0 {
            var u = Unpickler(try zip.bytes(of: pkl), path: path, entry: pkl.name, torchScript: isScript)
            root = try u.load()
        } else {
            let inflated = try zip.contents(of: pkl)
            var result: Result<TorchValue, TorchError> = .success(.none)
            inflated.withUnsafeBytes { b in
                var u = Unpickler(b, path: path, entry: pkl.name, torchScript: isScript)
                do throws(TorchError) { result = .success(try u.load()) } catch { result = .failure(error) }
            }
            root = try result.get()
        }
        var classes: [String: ScriptClass] = [:]
        if isScript {
            let codePrefix = prefix + "code/"
            for e in zip.entries where e.name.hasPrefix(codePrefix) && e.name.hasSuffix(".py") {
                let module = String(e.name.dropFirst(codePrefix.count).dropLast(3).map { $0 == "/" ? "." : $0 })
                let text = String(decoding: try zip.contents(of: e), as: UTF8.self)
                for (name, c) in Self.scriptClasses(in: text) { classes["\(module).\(name)"] = c }
            }
        }
        return (isScript ? .torchScript : .zip, root, bigEndian, storages, classes)
    }

    /// The `__parameters__` and `__buffers__` lists of each `class X(Module):` in TorchScript code.
    static func scriptClasses(in text: String) -> [(String, ScriptClass)] {
        var out: [(String, ScriptClass)] = []
        var current: (String, ScriptClass)?
        func names(_ line: Substring) -> [String] {
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]"), open < close else { return [] }
            return line[line.index(after: open)..<close].split(separator: ",").compactMap { item in
                let t = item.trimming([" ", "\"", "'"])
                return t.isEmpty ? nil : t
            }
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("class "), let paren = line.firstIndex(of: "(") ?? line.firstIndex(of: ":") {
                if let c = current { out.append(c) }
                current = (String(line.dropFirst(6)[..<paren]).trimming([" "]), ScriptClass())
            } else if current != nil {
                let t = line.drop { $0 == " " }
                if t.hasPrefix("__parameters__ =") { current?.1.parameters = names(t) }
                if t.hasPrefix("__buffers__ =") { current?.1.buffers = names(t) }
            }
        }
        if let c = current { out.append(c) }
        return out
    }

    // MARK: legacy

    /// The magic number opening a legacy file, as the bytes of its LONG1 argument.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// True when `b` opens with the legacy magic number: as LONG1 (protocol 2, after PROTO or
    /// not) or as a text LONG (protocols 0 and 1 write `L119547037146038801333356L`). A file cut
    /// short inside the magic number still counts (its reader then says where it is truncated).
    public static func startsLegacy(_ b: UnsafeRawBufferPointer) -> Bool {
        func at(_ offset: Int, _ prefix: [UInt8]) -> Bool {
            let n = min(prefix.count, b.count - offset)
            return n >= 2 && (0..<n).allSatisfy { b[offset + $0] == prefix[$0] }
        }
        let long1: [UInt8] = [0x8A, 0x0A] + legacyMagic
        return at(0, long1) || (b.count >= 2 && b[0] == 0x80 && at(2, long1)) || at(0, Array("L119547037146038801333356L\n".utf8))
    }

    private static func readLegacy(_ file: MappedFile) throws(TorchError) -> (
        root: TorchValue, bigEndian: Bool, storages: [String: StorageLocation]
    ) {
        let path = file.path
        let b = file.bytes
        var u = Unpickler(b, path: path, entry: "magic number")
        guard case .bigInt(let magic) = try u.load(), magic == legacyMagic else {
            throw .notTorchFile(path: path, detail: "a pickle without torch's magic number")
        }
        u = Unpickler(b, path: path, entry: "protocol version", offset: u.position)
        guard case .int(let version) = try u.load(), version == 1001 else {
            throw .notTorchFile(path: path, detail: "legacy protocol version is not 1001")
        }
        u = Unpickler(b, path: path, entry: "system info", offset: u.position)
        let info = try u.load()
        var bigEndian = false
        if case .bool(let little)? = info["little_endian"] { bigEndian = !little }
        u = Unpickler(b, path: path, entry: "object pickle", offset: u.position)
        let root = try u.load()
        // Element sizes come from the storage classes of the persistent ids (untyped: bytes).
        let storageTypes = u.storageTypes
        u = Unpickler(b, path: path, entry: "storage key list", offset: u.position)
        let keyList = try u.load()
        guard case .list(let keyValues) = keyList else {
            throw .invalidPickle(path: path, entry: "storage key list", offset: u.position, detail: "not a list of keys")
        }
        var storages: [String: StorageLocation] = [:]
        var offset = u.position
        for kv in keyValues {
            guard let key = kv.keyComponent else {
                throw .invalidPickle(path: path, entry: "storage key list", offset: offset, detail: "a key is \(kv.kindDescription)")
            }
            guard let type = storageTypes[key] else {
                throw .notTorchFile(path: path, detail: "storage '\(key)' is listed but the object never refers to it, so its element size is unknown")
            }
            let width = type?.elementSize ?? 1
            guard offset <= b.count - 8 else {
                throw .storageTooShort(path: path, tensor: "(storage header)", storage: key, needed: 8, available: max(0, b.count - offset))
            }
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(b[offset + i]) << (8 * UInt64(bigEndian ? 7 - i : i)) }
            offset += 8
            let (bytes, o) = Int(clamping: n).multipliedReportingOverflow(by: width)
            guard n <= UInt64(Int.max), !o, bytes <= b.count - offset else {
                throw .storageTooShort(path: path, tensor: "(storage)", storage: key, needed: o ? Int.max : bytes, available: b.count - offset)
            }
            storages[key] = StorageLocation(entry: "storage \(key)", offset: offset, byteCount: bytes, method: 0)
            offset += bytes
        }
        return (root, bigEndian, storages)
    }
}
