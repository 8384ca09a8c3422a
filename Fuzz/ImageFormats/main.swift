import DLImage

/// libFuzzer entry: the first byte picks one of the decoders added after PNG/JPEG (BMP, PNM,
/// TIFF, WebP, JPEG 2000), which gets the rest whatever its first bytes say, as RGB and as gray;
/// what decodes is resized.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageFormats(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let formats: [ImageCodec.Format] = [.bmp, .pnm, .tiff, .webp, .jpeg2000]
    let format = formats[Int(data[0]) % formats.count]
    let bytes = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    for channels in [3, 1] {
        if let image = try? ImageCodec.decode(bytes, as: format, channels: channels, path: "fuzz") {
            _ = ImageCodec.resized(image, height: 3, width: 5).last
        }
    }
    return 0
}
