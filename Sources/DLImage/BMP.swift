/// Windows bitmaps (BMP) to 8-bit RGB, read as Pillow reads them (what ONNX's ImageDecoder
/// reference uses): the core (12-byte) and info (40 to 124-byte) headers; 1, 4 and 8-bit palettes,
/// uncompressed or run-length encoded (RLE8, RLE4); 16-bit 5-5-5; 24 and 32-bit BGR(X); bit fields
/// of 16, 24 and 32 bits (each field scaled to 8 bits as `v * 255 / max`). Alpha is dropped.
/// Rows are bottom-up unless the height is negative.
///
/// Layout (Microsoft's BITMAPFILEHEADER / BITMAPINFOHEADER): "BM", file size u32, reserved u32,
/// pixel offset u32; then the header: size u32, width i32, height i32, planes u16, bits u16,
/// compression u32, image size u32, resolution 2 x i32, colors used u32, important u32, and from
/// 52 bytes on the red, green, blue (and from 56 alpha) masks. All little-endian.
enum BMP {
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int) throws(ImageReadError) -> (width: Int, height: Int, rgb: [UInt8]) {
        let r = ByteReader(bytes)
        guard try r.u16(0) == 0x4D42 else { throw ImageReadError("not a BMP (no 'BM' signature)") }
        let dataOffset = Int(try r.u32(10))
        let headerSize = Int(try r.u32(14))
        let width: Int, rawHeight: Int, bits: Int, compression: Int
        var colors = 0, entry = 4
        var masks: [UInt32]? = nil
        // Where the palette (or, with no palette, the pixels) would start.
        var position = 14 + headerSize
        switch headerSize {
        case 12:
            width = Int(try r.u16(18))
            rawHeight = Int(try r.u16(20))
            bits = Int(try r.u16(24))
            compression = 0
            entry = 3
        case 40, 52, 56, 64, 108, 124:
            width = Int(Int32(bitPattern: try r.u32(18)))
            rawHeight = Int(Int32(bitPattern: try r.u32(22)))
            bits = Int(try r.u16(28))
            compression = Int(try r.u32(30))
            colors = Int(try r.u32(46))
            if compression == 3 {
                if headerSize >= 52 {
                    masks = [try r.u32(54), try r.u32(58), try r.u32(62), headerSize >= 56 ? try r.u32(66) : 0]
                } else {
                    // A 40-byte header is followed by the three masks.
                    masks = [try r.u32(54), try r.u32(58), try r.u32(62), 0]
                    position += 12
                }
            }
        default:
            throw ImageReadError("unsupported BMP header size \(headerSize)")
        }
        let topDown = rawHeight < 0
        let height = abs(rawHeight)
        guard width > 0, height > 0 else { throw ImageReadError("the image is \(width)x\(rawHeight) pixels") }
        guard width <= maxPixels / height else { throw ImageReadError("the image is larger than allowed") }
        guard [1, 4, 8, 16, 24, 32].contains(bits) else { throw ImageReadError("unsupported BMP pixel depth \(bits)") }
        switch compression {
        case 0: break
        case 1 where bits == 8, 2 where bits == 4: break
        case 3 where bits >= 16: break
        default: throw ImageReadError("unsupported BMP compression \(compression) at \(bits) bits")
        }

        // The palette: BGR(X) entries right after the header.
        var palette: [UInt8] = []
        if bits <= 8 {
            if colors == 0 { colors = 1 << bits }
            guard colors <= 65536 else { throw ImageReadError("a palette of \(colors) colors") }
            let available = min(colors, max(0, bytes.count - position) / entry)
            palette = [UInt8](repeating: 0, count: 3 * (1 << bits))
            for i in 0..<min(available, 1 << bits) {
                let e = position + i * entry
                palette[3 * i] = bytes[e + 2]
                palette[3 * i + 1] = bytes[e + 1]
                palette[3 * i + 2] = bytes[e]
            }
            // As Pillow: an offset pointing at the palette means the pixels follow it.
            if dataOffset == 14 + headerSize { position += entry * colors }
        }
        let start = dataOffset != 0 ? dataOffset : position
        guard start >= 0, start <= bytes.count else { throw ImageReadError("the pixel data offset \(start) is past the end of the file") }

        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        // Row y of the file is image row `row(y)`.
        func row(_ y: Int) -> Int { topDown ? y : height - 1 - y }
        if compression == 1 || compression == 2 {
            let indices = try runLengthDecoded(bytes, from: start, width: width, height: height, fourBit: compression == 2)
            for y in 0..<height {
                let o = row(y) * width * 3
                for x in 0..<width {
                    let p = 3 * Int(indices[y * width + x])
                    rgb[o + 3 * x] = palette[p]; rgb[o + 3 * x + 1] = palette[p + 1]; rgb[o + 3 * x + 2] = palette[p + 2]
                }
            }
            return (width, height, rgb)
        }

        let stride = ((width * bits + 31) >> 5) * 4
        let rowBytes = (width * bits + 7) / 8
        let needed = (height - 1) * stride + rowBytes
        guard bytes.count - start >= needed else {
            throw ImageReadError("the pixel data ends early (\(bytes.count - start) of \(needed) bytes)")
        }
        // Empty for the palette depths and plain 24-bit BGR.
        let fields = try bitFields(masks, bits: bits) ?? []
        rgb.withUnsafeMutableBufferPointer { out in
            for y in 0..<height {
                let src = start + y * stride, o = row(y) * width * 3
                for x in 0..<width {
                    let d = o + 3 * x
                    switch bits {
                    case 1, 4, 8:
                        let perByte = 8 / bits
                        let byte = Int(bytes[src + x / perByte])
                        let index = (byte >> (8 - bits * (x % perByte + 1))) & ((1 << bits) - 1)
                        out[d] = palette[3 * index]; out[d + 1] = palette[3 * index + 1]; out[d + 2] = palette[3 * index + 2]
                    case 24 where fields.isEmpty:
                        let s = src + 3 * x
                        out[d] = bytes[s + 2]; out[d + 1] = bytes[s + 1]; out[d + 2] = bytes[s]
                    default:
                        let s = src + x * (bits / 8)
                        var v: UInt32 = 0
                        for k in 0..<(bits / 8) { v |= UInt32(bytes[s + k]) << (8 * k) }
                        for (c, field) in fields.enumerated() { out[d + c] = field.scaled(v) }
                    }
                }
            }
        }
        return (width, height, rgb)
    }

    /// One colour field of a pixel word: its mask's shift and width.
    struct Field {
        let shift: UInt32, maximum: UInt32
        func scaled(_ v: UInt32) -> UInt8 { UInt8(UInt64((v >> shift) & maximum) * 255 / UInt64(maximum)) }
    }

    /// The red, green and blue fields of 16, 24 and 32-bit pixels: the masks when the file gives
    /// them, else 5-5-5 (16 bits) or bytes (BGR, BGRX). Nil for 24 bits without masks (read
    /// directly), and for the palette depths.
    static func bitFields(_ masks: [UInt32]?, bits: Int) throws(ImageReadError) -> [Field]? {
        guard bits >= 16 else { return nil }
        var rgbMasks: [UInt32]
        if let masks {
            rgbMasks = Array(masks.prefix(3))
            // Pillow reads all-zero masks of 32 bits as BGRA.
            if bits == 32, masks.allSatisfy({ $0 == 0 }) { rgbMasks = [0xFF0000, 0xFF00, 0xFF] }
        } else {
            switch bits {
            case 16: rgbMasks = [0x7C00, 0x3E0, 0x1F]
            case 24: return nil
            default: rgbMasks = [0xFF0000, 0xFF00, 0xFF]
            }
        }
        var fields: [Field] = []
        for m in rgbMasks {
            let shift = UInt32(m.trailingZeroBitCount)
            let maximum = m == 0 ? 0 : m >> shift
            // A field is one run of bits inside the pixel.
            guard m != 0, maximum & (maximum &+ 1) == 0, bits == 32 || m >> UInt32(bits) == 0 else {
                throw ImageReadError("unsupported BMP bit fields \(rgbMasks.map { "0x" + String($0, radix: 16) }.joined(separator: " "))")
            }
            fields.append(Field(shift: shift, maximum: maximum))
        }
        return fields
    }

    /// RLE8 / RLE4 pixel indices, file row order, as Pillow's decoder reads them: a run (count,
    /// value), or an escape 0 followed by 0 (end of line), 1 (end of bitmap), 2 (delta: right, up)
    /// or n >= 3 (n literal indices, padded to an even file offset). Skipped pixels are index 0.
    static func runLengthDecoded(_ bytes: UnsafeRawBufferPointer, from start: Int, width: Int, height: Int, fourBit: Bool) throws(ImageReadError) -> [UInt8] {
        let total = width * height
        var data: [UInt8] = []
        data.reserveCapacity(total)
        var p = start, x = 0
        decoding: while data.count < total {
            guard p + 1 < bytes.count else { break }
            let count = Int(bytes[p]), value = bytes[p + 1]
            p += 2
            if count > 0 {
                let n = x + count > width ? max(0, width - x) : count
                let run = min(n, total - data.count)
                for i in 0..<run { data.append(fourBit ? (i % 2 == 0 ? value >> 4 : value & 0x0F) : value) }
                x += n
                continue
            }
            switch value {
            case 0:
                while data.count % width != 0 { data.append(0) }
                x = 0
            case 1:
                break decoding
            case 2:
                guard p + 1 < bytes.count else { break decoding }
                let skip = min(total - data.count, Int(bytes[p]) + Int(bytes[p + 1]) * width)
                p += 2
                data.append(contentsOf: repeatElement(0, count: skip))
                x = data.count % width
            default:
                let n = min(total - data.count, Int(value))
                let byteCount = fourBit ? (n + 1) / 2 : n
                let available = min(byteCount, bytes.count - p)
                for i in 0..<available {
                    let b = bytes[p + i]
                    if fourBit {
                        data.append(b >> 4)
                        if 2 * i + 1 < n { data.append(b & 0x0F) }
                    } else {
                        data.append(b)
                    }
                }
                p += available
                if available < byteCount || data.count == total { break decoding }
                x += Int(value)
                if p % 2 != 0 { p += 1 }
            }
        }
        guard data.count >= total else {
            throw ImageReadError("the run-length data ends before the image does (\(data.count) of \(total) pixels)")
        }
        return data
    }
}

/// What a decoder found wrong; ImageCodec adds the file's name.
struct ImageReadError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Little-endian reads that fail instead of running past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func u16(_ at: Int) throws(ImageReadError) -> UInt16 {
        guard at >= 0, at + 2 <= bytes.count else { throw ImageReadError("the header ends early (at byte \(at))") }
        return UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8
    }

    func u32(_ at: Int) throws(ImageReadError) -> UInt32 {
        guard at >= 0, at + 4 <= bytes.count else { throw ImageReadError("the header ends early (at byte \(at))") }
        return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}
