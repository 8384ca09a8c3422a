import DLImage

/// libFuzzer entry: the first byte picks one of the decoders added after PNG/JPEG (BMP, PNM,
/// TIFF, WebP, JPEG 2000), which gets the rest whatever its first bytes say, as RGB and as gray;
/// what decodes is resized. Images are held to 2^22 pixels (run-length BMP and the compressed
/// formats can claim 2^28 from a few bytes, which takes this instrumented build longer than
/// libFuzzer's timeout to fill).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageFormats(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let formats: [ImageCodec.Format] = [.bmp, .pnm, .tiff, .webp, .jpeg2000]
    let format = formats[Int(data[0]) % formats.count]
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    for channels in [3, 1] {
        if let image = try? ImageCodec.decode(bytes, as: format, channels: channels, path: "fuzz", maxPixels: 1 << 22) {
            _ = ImageCodec.resized(image, height: 3, width: 5).last
        }
    }
    return 0
}
