import DLImage
import DLSafeTensors
import DLSupport
import DLTensor
import DLTorch
import Foundation

/// Loads training data: `.safetensors` or `.npz` (input and target arrays by name) or `.csv`
/// (numeric columns with a header row).
public enum TrainingData {
    /// - Parameters:
    ///   - path: a .safetensors, .npz or .csv file.
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
        } else if lower.hasSuffix(".npz") {
            let (names, arrays) = try npz(path: path, reading: Set([inputName] + inputNames + wanted))
            for name in [inputName] + inputNames + wanted where arrays[name] == nil {
                throw .badSetting("\(path): no array '\(name)' (arrays: \(names.joined(separator: ", ")))")
            }
            x = arrays[inputName] ?? Tensor(zeros: .float32, shape: [0])
            for name in wanted { ys[name] = arrays[name] }
            for name in inputNames { xs[name] = arrays[name] }
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

    /// An image folder (one subfolder of PNG/JPEG images per class, torchvision's ImageFolder
    /// order) as a streamed dataset: each batch's images are decoded when the batch is asked for,
    /// resized to `height` x `width` and scaled to [0, 1], float32, NCHW (NHWC with
    /// `channelsLast`), with int64 class indices. Every image is decoded once here (and its
    /// pixels dropped), so a corrupt one stops the run before the first step.
    /// - Returns: the dataset, the class names, and the images left out because they did not
    ///   decode (only with `skipBadImages`; without it the first such image is the error).
    public static func loadImageFolder(path: String, height: Int, width: Int, channels: Int = 3, channelsLast: Bool = false,
                                       skipBadImages: Bool = false) throws(TrainingError) -> (data: Dataset, classes: [String], skipped: [String]) {
        let folder: ImageFolder
        var paths: [String] = [], labels: [Int64] = [], skipped: [String] = []
        do throws(ImageError) {
            folder = try ImageFolder(path: path)
            try ImageFolder.checkSize(height: height, width: width)
            guard channels == 1 || channels == 3 else { throw .badSize("\(path): \(channels) channels; 1 (gray) or 3 (RGB) are supported") }
            for (file, label) in folder.samples {
                do { _ = try ImageCodec.decode(path: file, channels: channels) } catch {
                    guard skipBadImages else { throw error }
                    skipped.append(file)
                    continue
                }
                paths.append(file)
                labels.append(Int64(label))
            }
            guard !paths.isEmpty else { throw .malformed(path: path, reason: "no image of the folder could be decoded") }
        } catch { throw .image(error) }
        let source = ImageFolderSource(paths: paths, height: height, width: width, channels: channels, channelsLast: channelsLast)
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
    /// (stored or deflated `.npy` members; little-endian numeric dtypes, C order). Other members
    /// are not decoded, so an array of a kind we cannot read does not stop the others.
    static func npz(path: String, reading wanted: Set<String>) throws(TrainingError) -> (names: [String], arrays: [String: Tensor]) {
        let zip: ZipArchive
        do {
            let file = try MappedFile(path: path)
            zip = try ZipArchive(file: file)
        } catch let e as ZipError { throw .torch(TorchError(e, path: path)) } catch { throw .cannotRead(path: path, reason: "\(error)") }
        var out: [String: Tensor] = [:]
        var names: [String] = []
        for entry in zip.entries where entry.name.hasSuffix(".npy") {
            let name = String(entry.name.dropLast(4))
            names.append(name)
            guard wanted.contains(name) else { continue }
            let bytes: [UInt8]
            do { bytes = try zip.contents(of: entry) } catch { throw .torch(TorchError(error, path: path)) }
            out[name] = try npy(bytes, path: "\(path): \(entry.name)")
        }
        return (names.sorted(), out)
    }

    static func npy(_ b: [UInt8], path: String) throws(TrainingError) -> Tensor {
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else { throw .cannotRead(path: path, reason: "not a .npy array (bad magic)") }
        let major = b[6]
        let headerLen: Int, start: Int
        if major == 1 { headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10 } else {
            guard b.count >= 12 else { throw .cannotRead(path: path, reason: "truncated header") }
            headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12
        }
        guard headerLen >= 0, start + headerLen <= b.count else { throw .cannotRead(path: path, reason: "header length \(headerLen) runs past the end") }
        let header = String(decoding: b[start..<(start + headerLen)], as: UTF8.self)
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
        guard b.count - body == count * dtype.byteWidth else {
            throw .cannotRead(path: path, reason: "holds \(b.count - body) data bytes, shape \(shape) of \(descr) needs \(count * dtype.byteWidth)")
        }
        do {
            return try b[body...].withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws(TensorError) -> Tensor in
                try Tensor(dtype: dtype, shape: shape, bytes: raw)
            }
        } catch { throw .cannotRead(path: path, reason: "\(error)") }
    }
}

/// The images of an image folder as samples, decoded batch by batch (`TrainingData.loadImageFolder`).
public struct ImageFolderSource: SampleSource {
    public let paths: [String]
    public let height: Int, width: Int, channels: Int
    public let channelsLast: Bool

    public init(paths: [String], height: Int, width: Int, channels: Int, channelsLast: Bool) {
        self.paths = paths
        self.height = height
        self.width = width
        self.channels = channels
        self.channelsLast = channelsLast
    }

    public var count: Int { paths.count }
    public var dtype: DType { .float32 }
    public var sampleShape: [Int] { channelsLast ? [height, width, channels] : [channels, height, width] }

    public func rows(_ indices: [Int]) throws(TrainingError) -> Tensor {
        let size = height * width * channels
        var pixels = [Float](repeating: 0, count: indices.count * size)
        for (k, i) in indices.enumerated() {
            guard paths.indices.contains(i) else { throw .badData("sample \(i) is past the \(paths.count) images") }
            let p: [Float]
            do { p = try ImageFolder.pixels(path: paths[i], height: height, width: width, channels: channels, channelsLast: channelsLast) } catch {
                throw .image(error)
            }
            pixels.replaceSubrange((k * size)..<((k + 1) * size), with: p)
        }
        return Tensor(shape: [indices.count] + sampleShape, scalars: pixels)
    }

    public func subset(_ range: Range<Int>) -> any SampleSource {
        ImageFolderSource(paths: Array(paths[range.clamped(to: paths.indices)]), height: height, width: width, channels: channels, channelsLast: channelsLast)
    }
}
