import DLImage
import DLSafeTensors
import DLTensor
import DLTestSupport
import Foundation
import Testing

/// Decoding against Pillow's pixels, torchvision's folder order, and bad images (fixtures/images,
/// made by scripts/fixtures/make_images.py and make_image_formats.py).
struct ImageCodecTests {
    static let folder = TestPackage.fixture("images/folder")
    static let formats = TestPackage.fixture("images/formats")
    /// Pillow's pixels by "FILE:rgb" / "FILE:gray", FILE relative to fixtures/images.
    static let expected: [String: Tensor] = {
        var out: [String: Tensor] = [:]
        for (n, t) in (try? SafeTensorsFile(path: TestPackage.fixture("images/decoded.safetensors")).tensors()) ?? [] { out["folder/" + n] = t }
        for (n, t) in (try? SafeTensorsFile(path: "\(formats)/decoded.safetensors").tensors()) ?? [] { out["formats/" + n] = t }
        return out
    }()

    static let keys = expected.keys.sorted()

    /// Every colour type of PNG (RGB, RGBA, gray, gray+alpha, palette) and JPEG (RGB, gray, CMYK), and
    /// the layouts of BMP, PBM/PGM/PPM, TIFF, WebP and JPEG 2000 (third-party files from CPython's
    /// tests among them) decode to Pillow's pixels exactly, as RGB and (for gray files) as gray.
    @Test(arguments: keys)
    func decodesLikePillow(key: String) throws {
        let parts = key.split(separator: ":")
        let channels = parts[1] == "gray" ? 1 : 3
        let want = try #require(Self.expected[key])
        let image = try ImageCodec.decode(path: TestPackage.fixture("images/\(parts[0])"), channels: channels)
        #expect([image.height, image.width] == Array(want.shape.prefix(2)))
        #expect(image.pixels == want.scalars(as: UInt8.self), "\(key)")
    }

    @Test func folderOrderIsTorchvisions() throws {
        let data = try #require(FileManager.default.contents(atPath: TestPackage.fixture("images/order.json")))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let folder = try ImageFolder(path: Self.folder)
        #expect(folder.classes == doc["classes"] as? [String])
        let samples = (doc["samples"] as? [[Any]] ?? []).map { ("\(Self.folder)/\($0[0])", ($0[1] as? Int) ?? -1) }
        #expect(folder.samples.map(\.path) == samples.map(\.0))
        #expect(folder.samples.map(\.label) == samples.map(\.1))
    }

    @Test func loadResizesScalesAndLaysOutChannels() throws {
        let folder = try ImageFolder(path: Self.folder)
        let (nchw, labels, skipped) = try folder.load(height: 4, width: 4)
        #expect(nchw.shape == [8, 3, 4, 4] && labels.shape == [8] && skipped.isEmpty)
        #expect(labels.scalars(as: Int64.self) == [0, 0, 0, 0, 1, 1, 1, 2])
        let v = nchw.scalars(as: Float.self)
        #expect(v.allSatisfy { $0 >= 0 && $0 <= 1 })
        let (nhwc, _, _) = try folder.load(height: 4, width: 4, channelsLast: true)
        #expect(nhwc.shape == [8, 4, 4, 3])
        // The same pixels in the other layout: image 0, channel 2, row 1, column 3.
        #expect(nhwc.scalars(as: Float.self)[(1 * 4 + 3) * 3 + 2] == v[(2 * 4 + 1) * 4 + 3])
        // cat/sub/c.png is 4x4: at its own size the pixels are Pillow's divided by 255.
        let gray = try #require(Self.expected["folder/cat/sub/c.png:rgb"]).scalars(as: UInt8.self)
        let c = Array(v[(3 * 48)..<(3 * 48 + 16)])
        #expect(c == gray.enumerated().filter { $0.offset % 3 == 0 }.map { Float(Double($0.element) / 255) })
    }

    @Test(arguments: [("truncated.png", "malformed image"), ("truncated.jpg", "corrupt JPEG data: Premature end"),
                      ("huge_truncated.jpg", "corrupt JPEG data"), ("many_scans.jpg", "more than 500 progressive scans"), ("crc.png", "IDAT"),
                      ("huge.png", "larger than allowed"), ("text.png", "not an image DLKit decodes"),
                      ("truncated_rgb565.bmp", "pixel data ends early"), ("truncated_rle8.bmp", "run-length data ends"),
                      ("lying.bmp", "pixel data ends early"), ("huge.bmp", "larger than allowed"),
                      ("truncated_maxval1000.ppm", "raster ends early"), ("truncated_plain.ppm", "raster ends early"),
                      ("lying.ppm", "raster ends early"), ("huge.pgm", "larger than allowed"), ("maxval.pgm", "larger than maxval"),
                      ("truncated_rgb_tiff_lzw.tif", "malformed image"), ("truncated_lossy.webp", "malformed image"),
                      ("truncated_rgb.jp2", "malformed image")])
    func badImagesNameTheFileAndTheProblem(file: String, message: String) {
        let path = TestPackage.fixture("images/bad/\(file)")
        do {
            _ = try ImageCodec.decode(path: path, channels: 3)
            Issue.record("\(file) decoded")
        } catch {
            #expect("\(error)".hasPrefix(path), "\(error)")
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    /// An image folder takes every format DLKit decodes, by extension, and labels each file by its
    /// class folder.
    @Test func folderTakesEveryFormat() throws {
        let tmp = TemporaryFolder()
        let files = ["a": ["core.bmp", "plain.pbm", "rgb_jpeg.tif", "cpython/python.pgm"], "b": ["lossy.webp", "rgb.jp2", "gray.j2k", "maxval100.ppm"]]
        for (label, names) in files {
            try FileManager.default.createDirectory(atPath: tmp.file(label), withIntermediateDirectories: true)
            for n in names { try FileManager.default.copyItem(atPath: "\(Self.formats)/\(n)", toPath: tmp.file("\(label)/\((n as NSString).lastPathComponent)")) }
        }
        let folder = try ImageFolder(path: tmp.file(""))
        #expect(folder.samples.map { ($0.path as NSString).lastPathComponent } ==
            ["core.bmp", "plain.pbm", "python.pgm", "rgb_jpeg.tif", "gray.j2k", "lossy.webp", "maxval100.ppm", "rgb.jp2"])
        let (images, labels, skipped) = try folder.load(height: 3, width: 3)
        #expect(images.shape == [8, 3, 3, 3] && skipped.isEmpty)
        #expect(labels.scalars(as: Int64.self) == [0, 0, 0, 0, 1, 1, 1, 1])
    }

    @Test func emptyClassFolderIsAnError() throws {
        let tmp = TemporaryFolder()
        try FileManager.default.createDirectory(atPath: tmp.file("a"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tmp.file("b"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.folder)/cat/b.png", toPath: tmp.file("a/1.png"))
        #expect(throws: ImageError.self) { try ImageFolder(path: tmp.file("")) }
    }
}
