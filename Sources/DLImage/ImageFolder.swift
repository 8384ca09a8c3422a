import DLTensor
import Foundation

/// A folder of one subfolder per class holding images, as torchvision's `ImageFolder` reads it:
/// classes sorted by folder name (index = position), files sorted by name within each. The files
/// taken are torchvision's extensions (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp) and the
/// other formats DLKit decodes (.pbm .pnm .jp2 .j2k), which torchvision's list leaves out.
public struct ImageFolder: Sendable {
    public let classes: [String]
    /// Every image file and its class index, in torchvision's order.
    public let samples: [(path: String, label: Int)]

    static let extensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp", "pbm", "pnm", "jp2", "j2k"]

    public init(path: String) throws(ImageError) {
        let fm = FileManager.default
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: path) } catch { throw .unreadable(path: path, reason: error.localizedDescription) }
        var isDir: ObjCBool = false
        let classes = entries.filter { !$0.hasPrefix(".") && fm.fileExists(atPath: "\(path)/\($0)", isDirectory: &isDir) && isDir.boolValue }.sorted()
        guard !classes.isEmpty else { throw .noClasses(path: path) }
        var samples: [(String, Int)] = []
        for (label, name) in classes.enumerated() {
            let dir = "\(path)/\(name)"
            guard let walker = fm.enumerator(atPath: dir) else { throw .unreadable(path: dir, reason: "cannot list it") }
            var files: [String] = []
            for case let rel as String in walker where Self.extensions.contains((rel as NSString).pathExtension.lowercased()) {
                files.append(rel)
            }
            guard !files.isEmpty else { throw .emptyClass(path: dir) }
            // torchvision walks the class folder with sorted(os.walk(...)): folder by folder in
            // order of their paths, the files of each sorted by name.
            let ordered = files.sorted { a, b in
                let da = (a as NSString).deletingLastPathComponent, db = (b as NSString).deletingLastPathComponent
                return da != db ? da < db : (a as NSString).lastPathComponent < (b as NSString).lastPathComponent
            }
            for f in ordered { samples.append(("\(dir)/\(f)", label)) }
        }
        self.classes = classes
        self.samples = samples
    }

    /// Decodes every image, resized to `height` x `width` and scaled to [0, 1]: the pixels as one
    /// float32 tensor, NCHW (or NHWC), and the labels as int64. With `skipBad`, images that fail to
    /// decode are left out and listed; without it the first one is an error naming the file.
    public func load(height: Int, width: Int, channels: Int = 3, channelsLast: Bool = false, skipBad: Bool = false)
        throws(ImageError) -> (images: Tensor, labels: Tensor, skipped: [String]) {
        try Self.checkSize(height: height, width: width)
        var pixels: [Float] = []
        var labels: [Int64] = []
        var skipped: [String] = []
        pixels.reserveCapacity(samples.count * height * width * channels)
        for (path, label) in samples {
            do { pixels += try Self.pixels(path: path, height: height, width: width, channels: channels, channelsLast: channelsLast) } catch {
                guard skipBad else { throw error }
                skipped.append(path)
                continue
            }
            labels.append(Int64(label))
        }
        guard !labels.isEmpty else { throw .malformed(path: samples.first?.path ?? "", reason: "no image of the folder could be decoded") }
        let shape = channelsLast ? [labels.count, height, width, channels] : [labels.count, channels, height, width]
        return (Tensor(shape: shape, scalars: pixels), Tensor(shape: [labels.count], scalars: labels), skipped)
    }

    /// Refuses an output size that is not positive or larger than `ImageCodec.maxPixels`.
    public static func checkSize(height: Int, width: Int) throws(ImageError) {
        guard height > 0, width > 0, height <= ImageCodec.maxPixels / width else {
            throw .badSize("the image size \(height)x\(width) must be positive and at most \(ImageCodec.maxPixels) pixels")
        }
    }

    /// One image as a sample: decoded, resized to `height` x `width`, scaled to [0, 1], and laid
    /// out CHW (HWC with `channelsLast`).
    public static func pixels(path: String, height: Int, width: Int, channels: Int, channelsLast: Bool) throws(ImageError) -> [Float] {
        ImageCodec.resized(try ImageCodec.decode(path: path, channels: channels), height: height, width: width, planar: !channelsLast)
    }

    /// `pixels`, written to `out` (`height * width * channels` floats): a batch fills its rows in place.
    public static func pixels(path: String, height: Int, width: Int, channels: Int, channelsLast: Bool,
                              into out: UnsafeMutablePointer<Float>) throws(ImageError) {
        ImageCodec.resize(try ImageCodec.decode(path: path, channels: channels), height: height, width: width, planar: !channelsLast, into: out)
    }
}
