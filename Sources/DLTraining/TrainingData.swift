import DLImage
import DLSafeTensors
import DLSupport
import DLTensor
import DLTorch
import Foundation

/// Loads training data: `.safetensors`, `.npz` or a folder of `.npy` files (input and target
/// arrays by name) or `.csv` (numeric columns with a header row). `.safetensors`, `.npy` and the
/// stored members of an `.npz` are memory-mapped, not read.
public enum TrainingData {
    /// - Parameters:
    ///   - path: a .safetensors, .npz or .csv file, or a folder of .npy files (one an array).
    ///   - inputName: the input array's name in .safetensors / .npz.
    ///   - inputNames: further input arrays (a model with several inputs), `namedInputs` by name.
    ///   - targetName: the target array's name in .safetensors / .npz.
    ///   - targetNames: several target arrays (a loss per output); the first is `targets`, and
    ///     all are `namedTargets` by name. Overrides `targetName`.
    ///   - inputColumns: for .csv: the header's names of the input columns (all others but the target when empty).
    ///   - targetColumn: for .csv: the header's name of the target column.
    ///   - integerTargets: read CSV targets as int64 class indices.
    public static func load(path: String, inputName: String = "x", inputNames: [String] = [], targetName: String = "y", targetNames: [String] = [],
                            inputColumns: [String] = [], targetColumn: String? = nil,
                            integerTargets: Bool = false) throws(TrainingError) -> Dataset {
        let lower = path.lowercased()
        let wanted = targetNames.isEmpty ? [targetName] : targetNames
        let x: Tensor
        var ys: [String: Tensor] = [:], xs: [String: Tensor] = [:]
        if lower.hasSuffix(".csv") {
            guard inputNames.isEmpty else { throw .badSetting("\(path): CSV data makes one input; several inputs need .safetensors or .npz data") }
            guard wanted.count == 1 else { throw .badSetting("\(path): CSV data has one target column; a loss per output needs .safetensors or .npz data") }
            let y: Tensor
            (x, y) = try csv(path: path, inputColumns: inputColumns, targetColumn: targetColumn, integerTargets: integerTargets)
            ys[wanted[0]] = y
        } else if lower.hasSuffix(".npz") || isArrayFolder(path, inputName: inputName) {
            let folder = !lower.hasSuffix(".npz")
            let reading = Set([inputName] + inputNames + wanted)
            let (names, arrays) = folder ? try npyFolder(path: path, reading: reading) : try npz(path: path, reading: reading)
            for name in [inputName] + inputNames + wanted where arrays[name] == nil {
                throw .badSetting("\(path): no array '\(name)' (arrays: \(names.joined(separator: ", ")))")
            }
            for name in wanted { ys[name] = try arrays[name]?.tensor() }
            for name in inputNames { xs[name] = try arrays[name]?.tensor() }
            // A single input not aligned in the file streams row by row; targets (small) are copied.
            if inputNames.isEmpty, case .unaligned(let source)? = arrays[inputName], let y = ys[wanted[0]] {
                do { return try Dataset(source: source, targets: y, namedTargets: targetNames.isEmpty ? [:] : ys) } catch { throw .badSetting("\(path): \(error)") }
            }
            x = try arrays[inputName]?.tensor() ?? Tensor(zeros: .float32, shape: [0])
        } else {
            // Memory-mapped: batches copy only their rows, so data larger than memory streams from the file.
            let f: SafeTensorsFile
            do { f = try SafeTensorsFile(path: path) } catch { throw .safetensors(error) }
            for name in [inputName] + inputNames + wanted where f.entry(name) == nil {
                throw .badSetting("\(path): no tensor '\(name)' (tensors: \(f.names.joined(separator: ", ")))")
            }
            do {
                x = try f.tensor(named: inputName)
                for name in wanted { ys[name] = try f.tensor(named: name) }
                for name in inputNames { xs[name] = try f.tensor(named: name) }
            } catch { throw .safetensors(error) }
        }
        guard let y = ys[wanted[0]] else { throw .badSetting("\(path): no target '\(wanted[0])'") }
        do { return try Dataset(inputs: x, targets: y, namedTargets: targetNames.isEmpty ? [:] : ys, namedInputs: xs) } catch { throw .badSetting("\(path): \(error)") }
    }

    /// An image folder (one subfolder of images per class, torchvision's ImageFolder
    /// order) as a dataset of its images resized to `height` x `width` and scaled to [0, 1],
    /// float32, NCHW (NHWC with `channelsLast`), with int64 class indices. Every image is decoded
    /// once here, so a corrupt one stops the run before the first step. Their pixels are kept
    /// while they fit in `cacheBytes` (as tf.data's `cache()`: each later epoch reads them from
    /// memory); the images past it stream, decoded again when a batch asks for them.
    /// - Returns: the dataset, the class names, and the images left out because they did not
    ///   decode (only with `skipBadImages`; without it the first such image is the error).
    public static func loadImageFolder(path: String, height: Int, width: Int, channels: Int = 3, channelsLast: Bool = false,
                                       skipBadImages: Bool = false, cacheBytes: Int = ImageFolderSource.defaultCacheBytes)
        throws(TrainingError) -> (data: Dataset, classes: [String], skipped: [String]) {
        let folder: ImageFolder
        var paths: [String] = [], labels: [Int64] = [], skipped: [String] = []
        var kept: [[Float]] = []
        do throws(ImageError) {
            folder = try ImageFolder(path: path)
            try ImageFolder.checkSize(height: height, width: width)
            guard channels == 1 || channels == 3 else { throw .badSize("\(path): \(channels) channels; 1 (gray) or 3 (RGB) are supported") }
            let size = height * width * channels
            var room = max(0, cacheBytes) / (size * MemoryLayout<Float>.stride)
            for (file, label) in folder.samples {
                do {
                    if room > 0 {
                        kept.append(try ImageFolder.pixels(path: file, height: height, width: width, channels: channels, channelsLast: channelsLast))
                        room -= 1
                    } else {
                        _ = try ImageCodec.decode(path: file, channels: channels)
                    }
                } catch {
                    guard skipBadImages else { throw error }
                    skipped.append(file)
                    continue
                }
                paths.append(file)
                labels.append(Int64(label))
            }
            guard !paths.isEmpty else { throw .malformed(path: path, reason: "no image of the folder could be decoded") }
        } catch { throw .image(error) }
        let source = ImageFolderSource(paths: paths, height: height, width: width, channels: channels, channelsLast: channelsLast,
                                       cached: DecodedImages(kept))
        return (try Dataset(source: source, targets: Tensor(shape: [labels.count], scalars: labels)), folder.classes, skipped)
    }

    static func csv(path: String, inputColumns: [String], targetColumn: String?, integerTargets: Bool) throws(TrainingError) -> (Tensor, Tensor) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .cannotRead(path: path, reason: "cannot be read as UTF-8 text")
        }
        // Non-blank lines with their 1-based line numbers in the file (blank lines are skipped).
        var numbered = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
            .map { (number: $0.offset + 1, text: String(decoding: $0.element.last == UInt8(ascii: "\r") ? $0.element.dropLast() : $0.element, as: UTF8.self)) }
            .filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !numbered.isEmpty else { throw .cannotRead(path: path, reason: "is empty") }
        let header = numbered.removeFirst().text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let targetColumn else { throw .badSetting("\(path): CSV data needs a target column") }
        guard let ti = header.firstIndex(of: targetColumn) else {
            throw .badSetting("\(path): no column '\(targetColumn)' (columns: \(header.joined(separator: ", ")))")
        }
        let inputs = inputColumns.isEmpty ? header.filter { $0 != targetColumn } : inputColumns
        var idx: [Int] = []
        for c in inputs {
            guard let i = header.firstIndex(of: c) else { throw .badSetting("\(path): no column '\(c)' (columns: \(header.joined(separator: ", ")))") }
            idx.append(i)
        }
        var xs: [Float] = [], ys: [Double] = []
        for (lineNumber, line) in numbered {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == header.count else {
                throw .cannotRead(path: path, reason: "line \(lineNumber) has \(cells.count) fields, the header \(header.count)")
            }
            for i in idx {
                guard let v = Float(cells[i]) else { throw .cannotRead(path: path, reason: "line \(lineNumber), column '\(header[i])': '\(cells[i])' is not a number") }
                xs.append(v)
            }
            guard let t = Double(cells[ti]) else { throw .cannotRead(path: path, reason: "line \(lineNumber), column '\(targetColumn)': '\(cells[ti])' is not a number") }
            if integerTargets && t != t.rounded() { throw .cannotRead(path: path, reason: "line \(lineNumber): class '\(cells[ti])' is not an integer") }
            ys.append(t)
        }
        let x = Tensor(shape: [numbered.count, idx.count], scalars: xs)
        let y = integerTargets ? Tensor(shape: [numbered.count], scalars: ys.map { Int64($0) }) : Tensor(shape: [numbered.count, 1], scalars: ys.map { Float($0) })
        return (x, y)
    }

    /// The names of the arrays in a NumPy `.npz` (sorted), and those of them in `wanted` read
    /// (stored or deflated `.npy` members; little-endian numeric dtypes, C order). A stored member
    /// (`np.savez`) stays in the memory-mapped file, so data larger than memory streams from it: a
    /// view when its data is aligned for its dtype, else (the zip's local header puts it at any
    /// byte, and NumPy aligns it only within the member) rows copied batch by batch. A deflated
    /// one (`np.savez_compressed`) is inflated whole. Other members are not decoded, so an array
    /// of a kind we cannot read does not stop the others.
    static func npz(path: String, reading wanted: Set<String>) throws(TrainingError) -> (names: [String], arrays: [String: NpyArray]) {
        let zip: ZipArchive, file: MappedFile
        do {
            file = try MappedFile(path: path)
            zip = try ZipArchive(file: file)
        } catch let e as ZipError { throw .torch(TorchError(e, path: path)) } catch { throw .cannotRead(path: path, reason: "\(error)") }
        var out: [String: NpyArray] = [:]
        var names: [String] = []
        for entry in zip.entries where entry.name.hasSuffix(".npy") {
            let name = String(entry.name.dropLast(4))
            names.append(name)
            guard wanted.contains(name) else { continue }
            let member = "\(path): \(entry.name)"
            if entry.method == 0 {
                out[name] = try npy(in: file, range: entry.dataOffset..<(entry.dataOffset + entry.size), path: member)
                continue
            }
            let bytes: [UInt8]
            do { bytes = try zip.contents(of: entry) } catch { throw .torch(TorchError(error, path: path)) }
            let array: Result<Tensor, TrainingError> = bytes.withUnsafeBytes { b in
                do throws(TrainingError) {
                    let layout = try npyLayout(b, path: member)
                    do { return .success(try Tensor(dtype: layout.dtype, shape: layout.shape, bytes: UnsafeRawBufferPointer(rebasing: b[layout.body...]))) } catch {
                        throw .cannotRead(path: member, reason: "\(error)")
                    }
                } catch { return .failure(error) }
            }
            out[name] = .tensor(try array.get())
        }
        return (names.sorted(), out)
    }

    /// Whether `path` is a folder of `.npy` arrays (`np.save(f"{dir}/{name}.npy", a)`, one file an
    /// array, named as `.npz` members are) holding `inputName`, rather than an image folder.
    public static func isArrayFolder(_ path: String, inputName: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            && FileManager.default.fileExists(atPath: "\(path)/\(inputName).npy")
    }

    /// The arrays `wanted` of a folder of `.npy` files, each memory-mapped (see `isArrayFolder`),
    /// and the names of all the folder's arrays (sorted).
    static func npyFolder(path: String, reading wanted: Set<String>) throws(TrainingError) -> (names: [String], arrays: [String: NpyArray]) {
        let files: [String]
        do { files = try FileManager.default.contentsOfDirectory(atPath: path) } catch { throw .cannotRead(path: path, reason: error.localizedDescription) }
        let names = files.filter { $0.hasSuffix(".npy") }.map { String($0.dropLast(4)) }.sorted()
        var out: [String: NpyArray] = [:]
        for name in wanted where names.contains(name) {
            let file: MappedFile, member = "\(path)/\(name).npy"
            do { file = try MappedFile(path: member) } catch { throw .cannotRead(path: member, reason: "\(error)") }
            out[name] = try npy(in: file, range: 0..<file.byteCount, path: member)
        }
        return (names, out)
    }

    /// An array read from a `.npy`: in memory or a view of a mapped file, or rows of a mapped file
    /// whose data is not aligned for its dtype.
    enum NpyArray {
        case tensor(Tensor)
        case unaligned(MappedRowsSource)

        /// The whole array as a tensor (a copy for `.unaligned`).
        func tensor() throws(TrainingError) -> Tensor {
            switch self {
            case .tensor(let t): t
            case .unaligned(let s): try s.rows(Array(0..<s.count))
            }
        }
    }

    /// The `.npy` array in bytes `range` of a mapped file, not read whole: a read-only view of the
    /// mapping when its data is aligned for its dtype (a `.npy` file: NumPy pads the header so
    /// that it is), else its rows read on demand (a scalar is copied).
    static func npy(in file: MappedFile, range: Range<Int>, path: String) throws(TrainingError) -> NpyArray {
        guard range.lowerBound >= 0, range.upperBound <= file.byteCount else { throw .cannotRead(path: path, reason: "the array lies outside the file") }
        let layout = try npyLayout(UnsafeRawBufferPointer(rebasing: file.bytes[range]), path: path)
        let offset = range.lowerBound + layout.body
        let address = file.base.map { Int(bitPattern: $0) } ?? 0
        do {
            if (address &+ offset) % layout.dtype.byteWidth == 0 {
                return .tensor(try Tensor(dtype: layout.dtype, shape: layout.shape, viewing: file, offset: offset))
            }
            // A scalar has no rows to stream.
            if layout.shape.isEmpty {
                return .tensor(try Tensor(dtype: layout.dtype, shape: [], bytes: UnsafeRawBufferPointer(rebasing: file.bytes[offset..<range.upperBound])))
            }
        } catch { throw .cannotRead(path: path, reason: "\(error)") }
        return .unaligned(MappedRowsSource(file: file, offset: offset, count: layout.shape[0], dtype: layout.dtype, sampleShape: Array(layout.shape.dropFirst())))
    }

    /// A `.npy` header (NumPy's format: magic "\x93NUMPY", version, header length, a Python dict
    /// literal with descr, fortran_order and shape): the array's dtype and shape, and where its
    /// data starts. Checks that exactly the data the shape needs follows.
    static func npyLayout(_ b: UnsafeRawBufferPointer, path: String) throws(TrainingError) -> (dtype: DType, shape: [Int], body: Int) {
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else { throw .cannotRead(path: path, reason: "not a .npy array (bad magic)") }
        let major = b[6]
        let headerLen: Int, start: Int
        if major == 1 { headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10 } else {
            guard b.count >= 12 else { throw .cannotRead(path: path, reason: "truncated header") }
            headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12
        }
        guard headerLen >= 0, start + headerLen <= b.count else { throw .cannotRead(path: path, reason: "header length \(headerLen) runs past the end") }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<(start + headerLen)]), as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrField = field("descr"), let q1 = descrField.firstIndex(of: "'") else { throw .cannotRead(path: path, reason: "no descr in header") }
        let rest = descrField[descrField.index(after: q1)...]
        guard let q2 = rest.firstIndex(of: "'") else { throw .cannotRead(path: path, reason: "bad descr") }
        let descr = String(rest[..<q2])
        if let f = field("fortran_order"), f.hasPrefix("True") { throw .cannotRead(path: path, reason: "Fortran-order arrays are not supported") }
        guard let s = field("shape"), let open = s.firstIndex(of: "("), let close = s.firstIndex(of: ")") else { throw .cannotRead(path: path, reason: "no shape in header") }
        var shape: [Int] = []
        for part in s[s.index(after: open)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            guard let v = Int(t), v >= 0 else { throw .cannotRead(path: path, reason: "bad shape entry '\(t)'") }
            shape.append(v)
        }
        let dtypes: [String: DType] = ["<f4": .float32, "<f8": .float64, "<i8": .int64, "<i4": .int32, "|u1": .uint8, "|b1": .bool, "<f2": .float16]
        guard let dtype = dtypes[descr] else { throw .cannotRead(path: path, reason: "dtype '\(descr)' is not supported") }
        let body = start + headerLen
        var count = 1
        for d in shape {
            let (m, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw .cannotRead(path: path, reason: "shape \(shape) overflows") }
            count = m
        }
        let (need, o) = count.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !o, b.count - body == need else {
            throw .cannotRead(path: path, reason: "holds \(b.count - body) data bytes, shape \(shape) of \(descr) needs \(o ? "more" : "\(need)")")
        }
        return (dtype, shape, body)
    }
}

/// The rows of an array in a memory-mapped file whose data is not aligned for its dtype (a stored
/// `.npz` member), copied batch by batch; the file is never read whole.
public struct MappedRowsSource: SampleSource {
    let file: MappedFile
    /// Where row 0 starts in the file.
    let offset: Int
    public let count: Int
    public let dtype: DType
    public let sampleShape: [Int]

    var rowBytes: Int { sampleShape.reduce(1, *) * dtype.byteWidth }

    public func rows(_ indices: [Int]) throws(TrainingError) -> Tensor {
        for i in indices where !(0..<count).contains(i) { throw .badData("\(file.path): sample \(i) is past its \(count) rows") }
        var out = Tensor(zeros: dtype, shape: [indices.count] + sampleShape)
        let size = rowBytes
        out.withUnsafeMutableBytes { dst in
            guard let d = dst.baseAddress, let s = file.base else { return }
            for (k, i) in indices.enumerated() { (d + k * size).copyMemory(from: s + offset + i * size, byteCount: size) }
        }
        return out
    }

    public func subset(_ range: Range<Int>) -> any SampleSource {
        let r = range.clamped(to: 0..<count)
        return MappedRowsSource(file: file, offset: offset + r.lowerBound * rowBytes, count: r.count, dtype: dtype, sampleShape: sampleShape)
    }
}

/// The images of an image folder as samples (`TrainingData.loadImageFolder`): the first
/// `cached.count` from memory, the others decoded batch by batch.
public struct ImageFolderSource: SampleSource {
    /// The pixels `loadImageFolder` keeps by default: a quarter of the machine's memory, at most 2 GiB.
    public static var defaultCacheBytes: Int { Int(min(ProcessInfo.processInfo.physicalMemory / 4, 2 << 30)) }

    public let paths: [String]
    public let height: Int, width: Int, channels: Int
    public let channelsLast: Bool
    /// The pixels of images `first ..< first + n` of `cached`, for `paths[0 ..< n]`.
    let cached: DecodedImages
    let first: Int

    public init(paths: [String], height: Int, width: Int, channels: Int, channelsLast: Bool) {
        self.init(paths: paths, height: height, width: width, channels: channels, channelsLast: channelsLast, cached: DecodedImages([]))
    }

    init(paths: [String], height: Int, width: Int, channels: Int, channelsLast: Bool, cached: DecodedImages, first: Int = 0) {
        self.paths = paths
        self.height = height
        self.width = width
        self.channels = channels
        self.channelsLast = channelsLast
        self.cached = cached
        self.first = first
    }

    public var count: Int { paths.count }
    public var dtype: DType { .float32 }
    public var sampleShape: [Int] { channelsLast ? [height, width, channels] : [channels, height, width] }
    /// How many of the images are read from memory.
    public var cachedCount: Int { max(0, min(paths.count, cached.images.count - first)) }

    public func rows(_ indices: [Int]) throws(TrainingError) -> Tensor {
        let size = height * width * channels
        for i in indices where !paths.indices.contains(i) { throw .badData("sample \(i) is past the \(paths.count) images") }
        var batch = Tensor(zeros: .float32, shape: [indices.count] + sampleShape)
        // Each image is copied or decoded straight into its row of the batch.
        let failure = batch.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> ImageError? in
            let out = raw.bindMemory(to: Float.self)
            guard let base = out.baseAddress else { return nil }
            let images = cached.images
            do throws(ImageError) {
                for (k, i) in indices.enumerated() {
                    let row = base + k * size
                    if first + i < images.count {
                        _ = UnsafeMutableBufferPointer(start: row, count: size).update(fromContentsOf: images[first + i])
                    } else {
                        try ImageFolder.pixels(path: paths[i], height: height, width: width, channels: channels, channelsLast: channelsLast, into: row)
                    }
                }
            } catch { return error }
            return nil
        }
        if let failure { throw .image(failure) }
        return batch
    }

    public func subset(_ range: Range<Int>) -> any SampleSource {
        let r = range.clamped(to: paths.indices)
        return ImageFolderSource(paths: Array(paths[r]), height: height, width: width, channels: channels, channelsLast: channelsLast,
                                 cached: cached, first: first + r.lowerBound)
    }
}

/// Decoded images shared by an image folder's source and its subsets (a validation split), made
/// once and only read after.
final class DecodedImages: Sendable {
    let images: [[Float]]
    init(_ images: [[Float]]) { self.images = images }
}
