/// Netpbm images (PBM, PGM, PPM: P1 to P6) to 8-bit RGB, read as Pillow reads them.
///
/// Layout (Netpbm's format pages): the magic "P1" to "P6", then width, height and (except for the
/// bitmaps P1/P4) maxval as decimal tokens separated by whitespace, `#` starting a comment that
/// runs to the end of the line; one whitespace byte; then the raster. P4/P5/P6 are binary
/// (P4: 1 bit a pixel, rows padded to bytes; P5/P6: 1 byte a sample, 2 big-endian when maxval
/// > 255); P1/P2/P3 are the same as decimal text. In bitmaps 1 is black.
///
/// Samples are scaled to 8 bits as `round(v / maxval * 255)` (ties to even, as Python's round).
/// One difference from Pillow: a 16-bit gray map (maxval > 255) is scaled to 8 bits the same way;
/// Pillow reads it as 32-bit integers, which its RGB conversion then clips at 255.
enum PNM {
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int) throws(ImageReadError) -> (width: Int, height: Int, rgb: [UInt8]) {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(bytes[1]) else {
            throw ImageReadError("not a PBM, PGM or PPM image (P1 to P6)")
        }
        let kind = Int(bytes[1] - UInt8(ascii: "0"))
        var p = 2
        guard p < bytes.count, isSpace(bytes[p]) else { throw ImageReadError("no whitespace after the magic P\(kind)") }
        p += 1
        let width = try headerToken(bytes, &p, "width"), height = try headerToken(bytes, &p, "height")
        guard width > 0, height > 0 else { throw ImageReadError("the image is \(width)x\(height) pixels") }
        guard width <= maxPixels / height else { throw ImageReadError("the image is larger than allowed") }
        let bitmap = kind == 1 || kind == 4
        let maxval = bitmap ? 1 : try headerToken(bytes, &p, "maxval")
        guard maxval > 0, maxval < 65536 else { throw ImageReadError("maxval \(maxval) is not between 1 and 65535") }
        let bands = kind == 3 || kind == 6 ? 3 : 1
        let count = width * height * bands
        // The fewest bytes the raster can take, checked before anything is allocated: a header
        // may claim any size.
        let fewest = switch kind {
        case 4: (width + 7) / 8 * height
        case 5, 6: count * (maxval > 255 ? 2 : 1)
        case 1: count
        default: 2 * count - 1
        }
        guard bytes.count - p >= fewest else { throw truncated(bytes.count - p, fewest) }
        var samples = [UInt8](repeating: 0, count: count)
        // A sample v of 0...maxval as 8 bits.
        let scale: (Int) -> UInt8 = { v in
            maxval == 255 ? UInt8(v) : UInt8(min(255, (Double(v) / Double(maxval) * 255).rounded(.toNearestOrEven)))
        }
        switch kind {
        case 4:
            let rowBytes = (width + 7) / 8
            guard bytes.count - p >= rowBytes * height else { throw truncated(bytes.count - p, rowBytes * height) }
            for y in 0..<height {
                for x in 0..<width {
                    let bit = bytes[p + y * rowBytes + x / 8] >> (7 - UInt8(x % 8)) & 1
                    samples[y * width + x] = bit == 1 ? 0 : 255
                }
            }
        case 5, 6:
            let size = maxval > 255 ? 2 : 1
            guard bytes.count - p >= count * size else { throw truncated(bytes.count - p, count * size) }
            for i in 0..<count {
                let v = size == 1 ? Int(bytes[p + i]) : Int(bytes[p + 2 * i]) << 8 | Int(bytes[p + 2 * i + 1])
                samples[i] = scale(v)
            }
        case 1:
            // Each '0' or '1' is a pixel; whitespace and comments between them are optional.
            var i = 0
            while i < count, p < bytes.count {
                let c = bytes[p]
                p += 1
                if isSpace(c) { continue }
                if c == UInt8(ascii: "#") { skipComment(bytes, &p); continue }
                guard c == UInt8(ascii: "0") || c == UInt8(ascii: "1") else { throw ImageReadError("the bitmap holds '\(Character(Unicode.Scalar(c)))', not 0 or 1") }
                samples[i] = c == UInt8(ascii: "1") ? 0 : 255
                i += 1
            }
            guard i == count else { throw truncated(i, count, unit: "pixels") }
        default:  // 2, 3: decimal samples
            var i = 0
            while i < count {
                guard let v = try dataToken(bytes, &p) else { throw truncated(i, count, unit: "samples") }
                guard v <= maxval else { throw ImageReadError("the sample \(v) is larger than maxval \(maxval)") }
                samples[i] = scale(v)
                i += 1
            }
        }
        if bands == 3 { return (width, height, samples) }
        var rgb = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count { rgb[3 * i] = samples[i]; rgb[3 * i + 1] = samples[i]; rgb[3 * i + 2] = samples[i] }
        return (width, height, rgb)
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }

    static func skipComment(_ bytes: UnsafeRawBufferPointer, _ p: inout Int) {
        while p < bytes.count, bytes[p] != 0x0A, bytes[p] != 0x0D { p += 1 }
        p += 1
    }

    static func truncated(_ got: Int, _ want: Int, unit: String = "bytes") -> ImageReadError {
        ImageReadError("the raster ends early (\(got) of \(want) \(unit))")
    }

    /// A header number. As Pillow reads the header: whitespace before it is skipped, a comment
    /// anywhere is skipped (even inside the number), and the one whitespace byte that ends it is
    /// consumed, so the raster starts right after.
    static func headerToken(_ bytes: UnsafeRawBufferPointer, _ p: inout Int, _ name: String) throws(ImageReadError) -> Int {
        var digits: [UInt8] = []
        while p < bytes.count, digits.count <= 10 {
            let c = bytes[p]
            p += 1
            if isSpace(c) {
                if digits.isEmpty { continue }
                break
            }
            if c == UInt8(ascii: "#") { skipComment(bytes, &p); continue }
            digits.append(c)
        }
        guard !digits.isEmpty else { throw ImageReadError("the header ends before the \(name)") }
        guard digits.count <= 10, let v = number(digits) else { throw ImageReadError("the \(name) is not a number") }
        return v
    }

    /// The next decimal sample of a P2/P3 raster, nil at the end of the data.
    static func dataToken(_ bytes: UnsafeRawBufferPointer, _ p: inout Int) throws(ImageReadError) -> Int? {
        while p < bytes.count {
            if isSpace(bytes[p]) { p += 1 } else if bytes[p] == UInt8(ascii: "#") { skipComment(bytes, &p) } else { break }
        }
        var digits: [UInt8] = []
        while p < bytes.count, !isSpace(bytes[p]), bytes[p] != UInt8(ascii: "#") {
            digits.append(bytes[p])
            p += 1
            guard digits.count <= 10 else { throw ImageReadError("a sample of more than 10 characters") }
        }
        if digits.isEmpty { return nil }
        guard let v = number(digits) else { throw ImageReadError("the sample '\(String(decoding: digits, as: UTF8.self))' is not a number") }
        return v
    }

    static func number(_ digits: [UInt8]) -> Int? {
        var v = 0
        for d in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(d) else { return nil }
            v = v * 10 + Int(d - UInt8(ascii: "0"))
        }
        return v
    }
}
