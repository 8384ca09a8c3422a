import DLGraph
import DLImage
import DLTensor

/// ONNX's ImageDecoder (opset 20): encoded image bytes to an `[H, W, C]` uint8 tensor, through
/// DLImage's decoders (every format the op lists: PNG, JPEG, BMP, PNM, TIFF, WebP, JPEG 2000).
enum ImageKernels {
    static var all: [KernelEntry] { [.init("ImageDecoder", decode)] }

    /// `pixel_format` RGB (`[H, W, 3]`), BGR (`[H, W, 3]`, channels reversed) or Grayscale
    /// (`[H, W, 1]`, ITU-R 601-2 luma of the decoded RGB). Alpha is dropped; a gray image is
    /// replicated to three channels for RGB/BGR.
    static func decode(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let x = try ctx.input(0)
        guard x.dtype == .uint8, x.rank == 1 else { throw ctx.fail("the encoded stream must be a 1-D uint8 tensor, got \(x.dtype) \(x.shape)") }
        let format = try ctx.string("pixel_format", "RGB")
        guard ["RGB", "BGR", "Grayscale"].contains(format) else { throw ctx.fail("pixel_format '\(format)' is not RGB, BGR or Grayscale") }
        let result: Result<DecodedImage, ImageError> = x.withUnsafeBytes { bytes in
            do throws(ImageError) { return .success(try ImageCodec.decode(bytes, channels: 3, path: "the encoded stream")) } catch { return .failure(error) }
        }
        var image: DecodedImage
        switch result {
        case .success(let decoded): image = decoded
        case .failure(let e): throw ctx.fail("\(e)")
        }
        if format == "Grayscale" { image = ImageCodec.luma(image) }
        var pixels = image.pixels
        if format == "BGR" {
            for i in stride(from: 0, to: pixels.count, by: 3) { pixels.swapAt(i, i + 2) }
        }
        return [Tensor(shape: [image.height, image.width, image.channels], scalars: pixels)]
    }
}
