import CImageCodecs
import DLTensor
import Foundation

/// Errors of image reading, each naming the file.
public enum ImageError: Error, CustomStringConvertible, Sendable {
    case unreadable(path: String, reason: String)
    case unknownFormat(path: String)
    case malformed(path: String, reason: String)
    case emptyClass(path: String)
    case noClasses(path: String)
    case badSize(String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot be read: \(r)"
        case .unknownFormat(let p): "\(p): not an image DLKit decodes (PNG, JPEG, BMP, PBM/PGM/PPM, TIFF, WebP, JPEG 2000)"
        case .malformed(let p, let r): "\(p): malformed image: \(r)"
        case .emptyClass(let p): "\(p): the class folder holds no images (\(ImageFolder.extensions.sorted().map { "." + $0 }.joined(separator: " ")))"
        case .noClasses(let p): "\(p): no class folders (an image folder holds one subfolder of images per class)"
        case .badSize(let s): s
        }
    }
}

/// 8-bit pixels, row-major, channels interleaved (HWC).
public struct DecodedImage: Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public let pixels: [UInt8]
}

/// Image decoding: PNG, JPEG, TIFF, WebP and JPEG 2000 through libpng, libjpeg-turbo, libtiff,
/// libwebp and libopenjp2 (the C side keeps their error handling away from Swift frames), BMP and
/// PNM (PBM/PGM/PPM) parsed here. The format is told by the file's first bytes, not its name.
public enum ImageCodec {
    public enum Format: Sendable { case png, jpeg, bmp, pnm, tiff, webp, jpeg2000 }

    /// The largest image decoded, in pixels: a header may claim any size, and is refused before
    /// anything is allocated when it claims more.
    public static let maxPixels = 1 << 28

    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> Format? {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + magic.count && magic.indices.allSatisfy { bytes[offset + $0] == magic[$0] }
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts(Array("BM".utf8)) { return .bmp }
        if bytes.count >= 3, bytes[0] == UInt8(ascii: "P"), (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(bytes[1]), PNM.isSpace(bytes[2]) { return .pnm }
        // Classic and BigTIFF, little- and big-endian.
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) || starts([0x49, 0x49, 0x2B, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2B]) { return .tiff }
        if starts(Array("RIFF".utf8)), starts(Array("WEBP".utf8), at: 8) { return .webp }
        // The JP2 signature box, or a bare codestream (SOC then SIZ).
        if starts([0, 0, 0, 12, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return .jpeg2000 }
        return nil
    }

    /// Decodes to `channels` channels: 3 (RGB; gray is replicated, alpha dropped) or 1 (gray).
    /// PNG and JPEG gray comes from libpng/libjpeg (color converted with the ITU-R 601 weights, as
    /// the libraries do); the other formats decode to RGB and take `luma`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, channels: Int, path: String) throws(ImageError) -> DecodedImage {
        guard let format = sniff(bytes) else { throw .unknownFormat(path: path) }
        return try decode(bytes, as: format, channels: channels, path: path)
    }

    /// Decodes `bytes` as `format`, whatever their first bytes say (the fuzz targets reach each
    /// decoder this way, with a smaller `maxPixels` so that a few bytes claiming a huge image
    /// cost them less time).
    public static func decode(_ bytes: UnsafeRawBufferPointer, as format: Format, channels: Int, path: String,
                              maxPixels: Int = ImageCodec.maxPixels) throws(ImageError) -> DecodedImage {
        guard channels == 1 || channels == 3 else { throw .badSize("\(path): \(channels) channels; 1 (gray) or 3 (RGB) are supported") }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { throw .malformed(path: path, reason: "the file is empty") }
        let data = base.assumingMemoryBound(to: UInt8.self), count = bytes.count
        let parsed: (width: Int, height: Int, rgb: [UInt8])
        do throws(ImageReadError) {
            switch format {
            case .bmp: parsed = try BMP.decode(bytes, maxPixels: maxPixels)
            case .pnm: parsed = try PNM.decode(bytes, maxPixels: maxPixels)
            case .png: return try library(channels: channels, as: channels, path: path) { dl_png_decode(data, count, Int32(channels), maxPixels, $0, $1, $2, $3, $4) }
            case .jpeg: return try library(channels: channels, as: channels, path: path) { dl_jpeg_decode(data, count, Int32(channels), maxPixels, $0, $1, $2, $3, $4) }
            case .tiff: return try library(channels: 3, as: channels, path: path) { dl_tiff_decode(data, count, maxPixels, $0, $1, $2, $3, $4) }
            case .webp: return try library(channels: 3, as: channels, path: path) { dl_webp_decode(data, count, maxPixels, $0, $1, $2, $3, $4) }
            case .jpeg2000: return try library(channels: 3, as: channels, path: path) { dl_jp2_decode(data, count, maxPixels, $0, $1, $2, $3, $4) }
            }
        } catch {
            throw .malformed(path: path, reason: error.reason)
        }
        let rgb = DecodedImage(width: parsed.width, height: parsed.height, channels: 3, pixels: parsed.rgb)
        return channels == 1 ? luma(rgb) : rgb
    }

    /// A decode through one of the C shims (out pixels, width, height, message, its size), which
    /// gives `decoded` channels; RGB is turned to gray when `wanted` is 1.
    private static func library(channels decoded: Int, as wanted: Int, path: String,
                                _ call: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>,
                                         UnsafeMutablePointer<CChar>?, Int) -> Int32) throws(ImageReadError) -> DecodedImage {
        var out: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { m in call(&out, &width, &height, m.baseAddress, m.count) }
        guard status == 0, let out else {
            throw ImageReadError(message.withUnsafeBufferPointer { b in b.baseAddress.map { String(cString: $0) } ?? "" })
        }
        defer { dl_image_free(out) }
        let n = Int(width) * Int(height) * decoded
        let image = DecodedImage(width: Int(width), height: Int(height), channels: decoded, pixels: Array(UnsafeBufferPointer(start: out, count: n)))
        return wanted == 1 && decoded == 3 ? luma(image) : image
    }

    /// Reads and decodes a file.
    public static func decode(path: String, channels: Int) throws(ImageError) -> DecodedImage {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        let result: Result<DecodedImage, ImageError> = data.withUnsafeBytes { b in
            do throws(ImageError) { return .success(try decode(b, channels: channels, path: path)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// An RGB image as gray by ITU-R 601-2 luma (L = 0.299 R + 0.587 G + 0.114 B) in 16-bit
    /// fixed point, rounded: what ONNX's ImageDecoder reference gets from Pillow's `convert("L")`.
    /// (Decoding with `channels: 1` leaves the conversion to libpng/libjpeg, whose JPEG gray is
    /// the stored luma plane, not a conversion of the decoded RGB.)
    public static func luma(_ image: DecodedImage) -> DecodedImage {
        guard image.channels == 3 else { return image }
        var gray = [UInt8](repeating: 0, count: image.width * image.height)
        image.pixels.withUnsafeBufferPointer { p in
            for i in gray.indices {
                let r = UInt32(p[3 * i]), g = UInt32(p[3 * i + 1]), b = UInt32(p[3 * i + 2])
                gray[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
        }
        return DecodedImage(width: image.width, height: image.height, channels: 1, pixels: gray)
    }

    /// Bilinear resampling to `height` x `width` (pixel centres aligned, as half-pixel
    /// `Resize` does, no antialiasing), scaled to [0, 1] float32, HWC (CHW with `planar`).
    public static func resized(_ image: DecodedImage, height: Int, width: Int, planar: Bool = false) -> [Float] {
        [Float](unsafeUninitializedCapacity: height * width * image.channels) { buffer, count in
            if let base = buffer.baseAddress { resize(image, height: height, width: width, planar: planar, into: base) }
            count = buffer.count
        }
    }

    /// `Float(p / 255)` for every 8-bit value p.
    static let unitScale: [Float] = (0..<256).map { Float(Double($0) / 255) }

    /// `resized`, written to `out` (`height * width * image.channels` floats), so that a batch is
    /// filled in place.
    ///
    /// The interpolation runs in Double from each output column's and row's two source indices and
    /// weight, worked out once per column and per row; at the image's own size every weight is 0,
    /// so each value is the pixel's `Float(p / 255)`, read from a table of the 256, channel by
    /// channel.
    public static func resize(_ image: DecodedImage, height: Int, width: Int, planar: Bool, into out: UnsafeMutablePointer<Float>) {
        let c = image.channels, plane = height * width
        // Element (y, x, k) of the result goes to out[y * rowStride + x * pixelStride + k * channelStride].
        let (rowStride, pixelStride, channelStride) = planar ? (width, 1, plane) : (width * c, c, 1)
        image.pixels.withUnsafeBufferPointer { src in
            guard let s = src.baseAddress else { return }
            if image.height == height, image.width == width {
                unitScale.withUnsafeBufferPointer { table in
                    guard let t = table.baseAddress else { return }
                    for k in 0..<c {
                        let d = out + k * channelStride
                        for i in 0..<plane { d[i * pixelStride] = t[Int(s[i * c + k])] }
                    }
                }
                return
            }
            func axis(_ n: Int, _ from: Int) -> [(Int, Int, Double)] {
                let scale = Double(from) / Double(n)
                return (0..<n).map { i in
                    let f = max(0, min(Double(from - 1), (Double(i) + 0.5) * scale - 0.5))
                    let i0 = Int(f)
                    return (i0, min(i0 + 1, from - 1), f - Double(i0))
                }
            }
            let xs = axis(width, image.width), ys = axis(height, image.height)
            for (y, (y0, y1, wy)) in ys.enumerated() {
                let r0 = y0 * image.width, r1 = y1 * image.width
                for (x, (x0, x1, wx)) in xs.enumerated() {
                    let d = y * rowStride + x * pixelStride
                    for k in 0..<c {
                        func p(_ row: Int, _ xx: Int) -> Double { Double(s[(row + xx) * c + k]) }
                        let v = (p(r0, x0) * (1 - wx) + p(r0, x1) * wx) * (1 - wy) + (p(r1, x0) * (1 - wx) + p(r1, x1) * wx) * wy
                        out[d + k * channelStride] = Float(v / 255)
                    }
                }
            }
        }
    }
}
