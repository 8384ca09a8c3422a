import DLImage

/// libFuzzer entry: bytes -> PNG or JPEG decode (libpng, libjpeg-turbo behind our C shim), as RGB
/// and as gray, and a resize of what decodes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for channels in [3, 1] {
        if let image = try? ImageCodec.decode(bytes, channels: channels, path: "fuzz") {
            _ = ImageCodec.resized(image, height: 3, width: 5).last
        }
    }
    return 0
}
