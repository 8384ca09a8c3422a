import DLImage

/// libFuzzer entry: bytes -> PNG or JPEG decode (libpng, libjpeg-turbo behind our C shim), as RGB
/// and as gray, and a resize of what decodes. Images are held to 2^22 pixels, as in fuzz-image-formats
/// (a PNG's deflate stream can fill 2^28 pixels from 260 KB, longer than libFuzzer's timeout in
/// this instrumented build).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let format = ImageCodec.sniff(bytes) else { return 0 }
    for channels in [3, 1] {
        if let image = try? ImageCodec.decode(bytes, as: format, channels: channels, path: "fuzz", maxPixels: 1 << 22) {
            _ = ImageCodec.resized(image, height: 3, width: 5).last
        }
    }
    return 0
}
