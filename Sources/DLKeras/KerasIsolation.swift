import DLSupport
import DLTensor
import Foundation

/// Reading HDF5-based Keras files (`.h5`, `.weights.h5`, `.keras`) in a helper process.
///
/// DLKit reads HDF5 through the system libhdf5, which (in Debian 12's 1.10.8, and in others)
/// corrupts memory on some crafted files, beyond what DLKit's own structural checks catch
/// (`Fuzz/libhdf5-crashes/`). Reading such a file in-process may crash the reader. With a
/// helper set, every Keras read runs `helper --dlkit-read-hdf5 FILE FOLDER` instead: that
/// process reads the file and writes what it found into a fresh temporary folder: the tensors'
/// bytes back to back in `tensors.bin` and a JSON manifest (read by the strict parser) naming
/// each tensor's dtype, shape and offset, every range checked against the file; this process
/// reads those and removes the folder. A helper that dies gives `KerasError.readerCrashed`, one that
/// refuses the file gives its own one-line error.
///
/// The command-line tools (`dlconvert`, `dlserve`, `dltrain`) do this by default with their own
/// executable (`DLKIT_HDF5_IN_PROCESS=1` turns it off). Library users opt in:
///
/// ```swift
/// KerasIsolation.helper = URL(fileURLWithPath: "/usr/local/bin/dlconvert")  // any DLKit tool
/// let model = try Model(contentsOf: URL(fileURLWithPath: "untrusted.h5"))
/// ```
/// An executable of their own may serve as helper by calling `KerasIsolation.serveIfHelper()`
/// first thing in `main`. DLKit's `Model` and `Converter` read every Keras file through
/// `KerasIsolation.read`; `KerasFile(path:)` itself always reads in-process.
public enum KerasIsolation {
    /// The hidden argument that makes a DLKit tool act as the helper.
    public static let helperFlag = "--dlkit-read-hdf5"

    private static let state = IsolationState()

    /// The executable that reads Keras files for this process; nil (the default for library
    /// users) reads them in-process, trusting libhdf5 with the bytes.
    public static var helper: URL? {
        get { state.get() }
        set { state.set(newValue) }
    }

    /// What the command-line tools call first: act as the helper when started as one (then the
    /// process exits), otherwise make this executable the helper unless
    /// `DLKIT_HDF5_IN_PROCESS=1` is set.
    public static func setUpForCommandLine() {
        serveIfHelper()
        if ProcessInfo.processInfo.environment["DLKIT_HDF5_IN_PROCESS"] == "1" { return }
        helper = currentExecutable()
    }

    /// When the arguments are `helperFlag FILE FOLDER`, reads FILE into FOLDER and exits:
    /// 0 when read, 1 with the error on stdout (marked) when the file is refused.
    public static func serveIfHelper() {
        let args = CommandLine.arguments
        guard args.count == 4, args[1] == helperFlag else { return }
        let code: Int32
        do {
            try writeParts(of: try KerasFile(path: args[2]), into: args[3])
            code = 0
        } catch {
            FileHandle.standardOutput.write(Data((marker + "\(error)" + "\n").utf8))
            code = 1
        }
        exit(code)
    }

    static let marker = "dlkit-hdf5-refused: "

    static func currentExecutable() -> URL? {
        if let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: real)
        }
        return Bundle.main.executableURL
    }

    /// Reads `path` through the helper when one is set, in-process otherwise.
    package static func read(_ path: String) throws(KerasError) -> KerasFile {
        guard let helper else { return try KerasFile(path: path) }
        if let cached = state.cached(path) { return cached }
        let file = try readInHelper(path, helper: helper)
        state.remember(path, file)
        return file
    }

    package static func readInHelper(_ path: String, helper: URL) throws(KerasError) -> KerasFile {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dlkit-hdf5-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700]) }
        catch { throw .helperFailed(path: path, reason: "cannot create a temporary folder: \(error.localizedDescription)") }
        defer { try? FileManager.default.removeItem(at: folder) }

        let process = Process()
        process.executableURL = helper
        process.arguments = [helperFlag, path, folder.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw .helperFailed(path: path, reason: "cannot run \(helper.path): \(error.localizedDescription)") }
        // Read before waiting: a full pipe would block the helper.
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()

        if process.terminationReason == .uncaughtSignal {
            throw .readerCrashed(path: path, how: "signal \(process.terminationStatus) in the helper process")
        }
        if process.terminationStatus != 0 {
            if let line = said.split(separator: "\n").last(where: { $0.hasPrefix(marker) }) {
                throw .helperRefused(path: path, message: String(line.dropFirst(marker.count)))
            }
            // No error of ours: the helper died inside libhdf5 (an AddressSanitizer build exits 1).
            throw .readerCrashed(path: path, how: "the helper process exited with status \(process.terminationStatus)")
        }
        return try readParts(path: path, from: folder.path)
    }

    // MARK: The parts a helper hands over

    /// `tensors.bin` holds every tensor's bytes back to back; `file.json` the rest, giving each
    /// tensor as `{"dtype": "float32", "shape": [2, 3], "offset": 0}`.
    static func writeParts(of file: KerasFile, into folder: String) throws {
        let blob = try AtomicFileWriter(path: folder + "/tensors.bin")
        func add(_ t: Tensor) throws -> JSON {
            guard t.dtype != .string else { throw KerasError.helperFailed(path: file.path, reason: "a string tensor cannot be handed over") }
            let offset = blob.bytesWritten
            try t.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in try blob.write(b) }
            return .object([("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map { JSON.int($0) })), ("offset", .int(offset))])
        }
        func pairs(_ list: [(name: String, tensor: Tensor)]) throws -> JSON {
            var out: [JSON] = []
            for (name, t) in list { out.append(.array([.string(name), try add(t)])) }
            return .array(out)
        }
        func layer(_ l: KerasLayerWeights) throws -> JSON {
            var subs: [JSON] = []
            for s in l.sublayers { subs.append(try layer(s)) }
            return .object([
                ("name", .string(l.name)), ("group", .string(l.group)),
                ("weights", try pairs(l.weights.map { ($0.name, $0.tensor) })), ("sublayers", .array(subs)),
            ])
        }
        var layers: [JSON] = []
        for l in file.layers { layers.append(try layer(l)) }
        var optimizer = JSON.null
        if let o = file.optimizer {
            optimizer = .object([("name", .string(o.name)), ("variables", try pairs(o.variables.map { ($0.name, $0.tensor) }))])
        }
        let manifest = JSON.object([
            ("kind", .string(file.kind.rawValue)), ("config", file.config ?? .null),
            ("keras_version", file.kerasVersion.map(JSON.string) ?? .null), ("backend", file.backend.map(JSON.string) ?? .null),
            ("layers", .array(layers)), ("optimizer", optimizer),
        ])
        try blob.commit()
        let out = try AtomicFileWriter(path: folder + "/file.json")
        try out.write(manifest.serialized())
        try out.commit()
    }

    static func readParts(path: String, from folder: String) throws(KerasError) -> KerasFile {
        func bad(_ what: String) -> KerasError { .helperFailed(path: path, reason: what) }
        let blob: MappedFile
        do { blob = try MappedFile(path: folder + "/tensors.bin") } catch { throw bad("\(error)") }
        guard let data = FileManager.default.contents(atPath: folder + "/file.json") else { throw bad("no manifest") }
        let manifest: JSON
        do { manifest = try JSONParser.parse([UInt8](data)) } catch { throw bad("manifest: \(error)") }
        func tensor(_ j: JSON?) throws(KerasError) -> Tensor {
            guard let j, case .string(let d)? = j["dtype"], let dtype = DType(rawValue: d), dtype != .string,
                  let dims = j["shape"]?.arrayValue, let offset = j["offset"]?.intValue else { throw bad("manifest tensor entry is damaged") }
            var shape: [Int] = []
            for v in dims {
                guard let n = v.intValue, n >= 0 else { throw bad("manifest tensor shape is damaged") }
                shape.append(n)
            }
            // A view into the mapped blob; the range is checked against the file.
            do { return try Tensor(dtype: dtype, shape: shape, viewing: blob, offset: offset) } catch { throw bad("\(error)") }
        }
        func pairs(_ j: JSON?) throws(KerasError) -> [(name: String, tensor: Tensor)] {
            guard case .array(let items)? = j else { throw bad("manifest lacks a weight list") }
            var out: [(name: String, tensor: Tensor)] = []
            for item in items {
                guard case .array(let p) = item, p.count == 2, case .string(let n) = p[0] else { throw bad("manifest weight entry is damaged") }
                out.append((n, try tensor(p[1])))
            }
            return out
        }
        func layer(_ j: JSON, depth: Int) throws(KerasError) -> KerasLayerWeights {
            guard depth < 64, case .string(let name)? = j["name"], case .string(let group)? = j["group"],
                  case .array(let subs)? = j["sublayers"] else { throw bad("manifest layer entry is damaged") }
            var sublayers: [KerasLayerWeights] = []
            for s in subs { sublayers.append(try layer(s, depth: depth + 1)) }
            return KerasLayerWeights(name: name, group: group, weights: try pairs(j["weights"]), sublayers: sublayers)
        }
        guard case .string(let kindName)? = manifest["kind"], let kind = KerasFile.Kind(rawValue: kindName),
              case .array(let layerItems)? = manifest["layers"] else { throw bad("manifest is damaged") }
        var layers: [KerasLayerWeights] = []
        for l in layerItems { layers.append(try layer(l, depth: 0)) }
        var optimizer: KerasOptimizerState?
        if let o = manifest["optimizer"], o != .null {
            guard case .string(let name)? = o["name"] else { throw bad("manifest optimizer is damaged") }
            optimizer = KerasOptimizerState(name: name, variables: try pairs(o["variables"]))
        }
        let config = manifest["config"].flatMap { $0 == .null ? nil : $0 }
        func string(_ key: String) -> String? { if case .string(let s)? = manifest[key] { return s } else { return nil } }
        return KerasFile(path: path, kind: kind, config: config, layers: layers, optimizer: optimizer,
                         kerasVersion: string("keras_version"), backend: string("backend"))
    }
}

/// The helper setting and the last file read through it (a summary asks for the same file
/// several times: model, then optimizer).
private final class IsolationState: @unchecked Sendable {
    private let lock = NSLock()
    private var helper: URL?
    private var last: (path: String, stamp: [String], file: KerasFile)?

    func get() -> URL? { lock.lock(); defer { lock.unlock() }; return helper }
    func set(_ u: URL?) { lock.lock(); defer { lock.unlock() }; helper = u; last = nil }

    private func stamp(_ path: String) -> [String] {
        let a = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
        return ["\(a[.size] ?? "")", "\(a[.modificationDate] ?? "")", "\(a[.systemFileNumber] ?? "")"]
    }

    func cached(_ path: String) -> KerasFile? {
        let s = stamp(path)
        lock.lock(); defer { lock.unlock() }
        guard let last, last.path == path, last.stamp == s else { return nil }
        return last.file
    }

    func remember(_ path: String, _ file: KerasFile) {
        let s = stamp(path)
        lock.lock(); defer { lock.unlock() }
        last = (path, s, file)
    }
}
