import DLTensor

/// Why a zip archive could not be read. The reader's callers add the file's path and their own
/// words (`TorchError`, `KerasError`).
package enum ZipError: Error, Equatable, Sendable {
    /// The zip structure is broken at `offset`.
    case invalid(offset: Int, detail: String)
    /// An entry's bytes lie outside the file.
    case entryOutsideFile(entry: String, offset: Int, byteCount: Int, fileSize: Int)
    /// An entry is compressed with a method this reader does not decode here (`bytes(of:)` takes
    /// only stored entries; `contents(of:)` also inflates deflate).
    case compressedEntry(entry: String, method: Int)
}

/// One file inside a zip archive, as the central directory describes it.
package struct ZipEntry: Sendable, Hashable {
    package let name: String
    /// Compression method: 0 stored, 8 deflated.
    package let method: Int
    package let crc32: UInt32
    package let compressedSize: Int
    package let size: Int
    /// Absolute offset of the entry's data in the file (after its local header).
    package let dataOffset: Int
}

/// A read-only zip archive over a memory-mapped file, read through its central directory.
///
/// `torch.save` writes local headers with zero sizes and a data descriptor after the data, so the
/// sizes are only trustworthy in the central directory; this reader never walks local headers
/// except to find where an entry's data starts. ZIP64 end records and extra fields are honoured,
/// so archives over 4 GB read. Every offset and size is checked against the file length.
package struct ZipArchive: Sendable {
    package let file: MappedFile
    package let entries: [ZipEntry]
    private let index: [String: Int]

    package var path: String { file.path }

    /// Reads the central directory of `file`.
    /// - Throws: `ZipError.invalid` naming the offset of the first broken structure, and
    ///   `.entryOutsideFile` when an entry's bytes are not inside the file.
    package init(file: MappedFile) throws(ZipError) {
        self.file = file
        let size = file.byteCount
        let bytes = file.bytes
        func bad(_ offset: Int, _ detail: String) -> ZipError { .invalid(offset: offset, detail: detail) }
        func le32(_ o: Int) -> UInt32 {
            UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }

        // End of central directory: 22 bytes plus a comment of at most 65535 bytes.
        guard size >= 22 else { throw bad(0, "the file is \(size) bytes, too short for a zip end record") }
        var eocd = -1
        var o = size - 22
        let lowest = max(0, size - 22 - 65_535)
        while o >= lowest {
            if bytes[o] == 0x50, le32(o) == 0x0605_4B50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw bad(size, "no end-of-central-directory record: the file is truncated or not a zip") }

        var r = ByteReader(bytes, offset: eocd + 4)
        var count: Int
        var cdSize: Int
        var cdOffset: Int
        do throws(ByteReaderError) {
            _ = try r.readLE(UInt16.self)  // this disk
            _ = try r.readLE(UInt16.self)  // disk with the directory
            _ = try r.readLE(UInt16.self)  // entries on this disk
            count = Int(try r.readLE(UInt16.self))
            cdSize = Int(try r.readLE(UInt32.self))
            cdOffset = Int(try r.readLE(UInt32.self))
        } catch { throw bad(eocd, "truncated end-of-central-directory record") }

        // ZIP64: a locator 20 bytes before the end record points at the ZIP64 end record.
        if eocd >= 20, le32(eocd - 20) == 0x0706_4B50 {
            var l = ByteReader(bytes, offset: eocd - 12)
            let z64: UInt64
            do throws(ByteReaderError) { z64 = try l.readLE(UInt64.self) } catch { throw bad(eocd - 20, "truncated ZIP64 locator") }
            guard size >= 56, z64 <= UInt64(size - 56) else { throw bad(eocd - 20, "the ZIP64 end record offset \(z64) is outside the file") }
            let z = Int(z64)
            guard le32(z) == 0x0606_4B50 else { throw bad(z, "no ZIP64 end record where the locator points") }
            var zr = ByteReader(bytes, offset: z + 24)
            var c: UInt64 = 0, s: UInt64 = 0, off: UInt64 = 0
            do throws(ByteReaderError) {
                _ = try zr.readLE(UInt64.self)  // entries on this disk
                c = try zr.readLE(UInt64.self)
                s = try zr.readLE(UInt64.self)
                off = try zr.readLE(UInt64.self)
            } catch { throw bad(z, "truncated ZIP64 end record") }
            guard off <= UInt64(size), s <= UInt64(size) - off else {
                throw bad(z, "the ZIP64 end record puts the central directory (\(s) bytes at offset \(off)) outside the file (\(size) bytes)")
            }
            guard c <= s / 46 else { throw bad(z, "\(c) entries cannot fit in a central directory of \(s) bytes") }
            count = Int(c)
            cdSize = Int(s)
            cdOffset = Int(off)
        }
        guard cdOffset <= size, cdSize <= size - cdOffset else {
            throw bad(eocd, "the central directory (\(cdSize) bytes at offset \(cdOffset)) is outside the file (\(size) bytes)")
        }
        guard count <= cdSize / 46 else {
            throw bad(eocd, "\(count) entries cannot fit in a central directory of \(cdSize) bytes")
        }

        var list: [ZipEntry] = []
        list.reserveCapacity(count)
        var idx: [String: Int] = [:]
        var spans: [(start: Int, end: Int, name: String)] = []
        var cd = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<(cdOffset + cdSize)]), offset: cdOffset)
        for _ in 0..<count {
            let start = cd.offset
            let rec: CentralRecord
            do { rec = try CentralRecord(&cd) } catch { throw bad(start, "truncated central directory entry") }
            guard rec.signature == 0x0201_4B50 else { throw bad(start, "expected a central directory entry") }
            let name = rec.name
            guard size >= 30, rec.localOffset <= UInt64(size - 30) else {
                throw bad(start, "entry '\(name)' has its local header at offset \(rec.localOffset), outside the file (\(size) bytes)")
            }
            let lh = Int(rec.localOffset)
            guard le32(lh) == 0x0403_4B50 else { throw bad(lh, "entry '\(name)': no local header at offset \(lh)") }
            let lnameLen = Int(UInt16(bytes[lh + 26]) | UInt16(bytes[lh + 27]) << 8)
            let lextraLen = Int(UInt16(bytes[lh + 28]) | UInt16(bytes[lh + 29]) << 8)
            let dataOffset = lh + 30 + lnameLen + lextraLen
            let csize = rec.compressedSize, usize = rec.size
            guard csize <= UInt64(size), usize <= UInt64(Int.max / 2), dataOffset <= size, Int(csize) <= size - dataOffset else {
                throw .entryOutsideFile(entry: name, offset: dataOffset,
                                        byteCount: csize > UInt64(Int.max) ? Int.max : Int(csize), fileSize: size)
            }
            if rec.method == 0, csize != usize {
                throw bad(start, "stored entry '\(name)' has compressed size \(csize) but size \(usize)")
            }
            // Deflate cannot expand more than 1032:1, so a larger claim is a lie (or a bomb).
            if rec.method == 8, usize > csize &* 1032 &+ 1024 {
                throw bad(start, "deflated entry '\(name)' claims \(usize) bytes from \(csize) compressed, more than deflate can expand")
            }
            spans.append((lh, dataOffset + Int(csize), name))
            let e = ZipEntry(name: name, method: rec.method, crc32: rec.crc, compressedSize: Int(csize), size: Int(usize), dataOffset: dataOffset)
            if idx[name] == nil { idx[name] = list.count }
            list.append(e)
        }
        // Entries may not share bytes with each other or with the central directory: overlapping
        // entries are how zip bombs multiply one compressed stream, and no writer makes them.
        spans.sort { $0.start < $1.start }
        for (a, b) in zip(spans, spans.dropFirst()) where a.end > b.start {
            throw bad(b.start, "entries '\(a.name)' and '\(b.name)' overlap (bytes \(a.start)..<\(a.end) and from \(b.start))")
        }
        if let last = spans.last, last.end > cdOffset {
            throw bad(last.start, "entry '\(last.name)' runs into the central directory at offset \(cdOffset)")
        }
        entries = list
        index = idx
    }

    package func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    /// The bytes of a stored entry, in place in the mapping.
    /// - Throws: `.compressedEntry` for anything but a stored entry.
    package func bytes(of entry: ZipEntry) throws(ZipError) -> UnsafeRawBufferPointer {
        guard entry.method == 0 else { throw .compressedEntry(entry: entry.name, method: entry.method) }
        return UnsafeRawBufferPointer(rebasing: file.bytes[entry.dataOffset..<(entry.dataOffset + entry.size)])
    }
}

/// The fields of one central directory entry, ZIP64 sizes applied.
private struct CentralRecord {
    var signature: UInt32
    var method: Int
    var crc: UInt32
    var compressedSize: UInt64
    var size: UInt64
    var localOffset: UInt64
    var name: String

    init(_ cd: inout ByteReader) throws(ByteReaderError) {
        signature = try cd.readLE(UInt32.self)
        try cd.skip(6)  // versions, flags
        method = Int(try cd.readLE(UInt16.self))
        try cd.skip(4)  // time, date
        crc = try cd.readLE(UInt32.self)
        compressedSize = UInt64(try cd.readLE(UInt32.self))
        size = UInt64(try cd.readLE(UInt32.self))
        let nameLen = Int(try cd.readLE(UInt16.self))
        let extraLen = Int(try cd.readLE(UInt16.self))
        let commentLen = Int(try cd.readLE(UInt16.self))
        try cd.skip(8)  // disk, attributes
        localOffset = UInt64(try cd.readLE(UInt32.self))
        name = String(decoding: try cd.readBytes(nameLen), as: UTF8.self)
        var extra = ByteReader(try cd.readBytes(extraLen))
        try cd.skip(commentLen)
        while extra.remaining >= 4 {
            let tag = try extra.readLE(UInt16.self)
            let len = Int(try extra.readLE(UInt16.self))
            var field = ByteReader(try extra.readBytes(len))
            guard tag == 0x0001 else { continue }
            if size == 0xFFFF_FFFF { size = try field.readLE(UInt64.self) }
            if compressedSize == 0xFFFF_FFFF { compressedSize = try field.readLE(UInt64.self) }
            if localOffset == 0xFFFF_FFFF { localOffset = try field.readLE(UInt64.self) }
        }
    }
}

extension ZipArchive {
    /// The contents of an entry, inflated when it is deflate-compressed (copied either way).
    /// - Throws: `.compressedEntry` for other methods, `.invalidZip` for broken deflate data.
    package func contents(of entry: ZipEntry) throws(ZipError) -> [UInt8] {
        if entry.method == 0 { return Array(try bytes(of: entry)) }
        guard entry.method == 8 else { throw .compressedEntry(entry: entry.name, method: entry.method) }
        guard entry.size <= 1 << 30 else {
            throw .invalid(offset: entry.dataOffset, detail: "compressed entry '\(entry.name)' claims \(entry.size) bytes")
        }
        let raw = UnsafeRawBufferPointer(rebasing: file.bytes[entry.dataOffset..<(entry.dataOffset + entry.compressedSize)])
        do { return try Inflate.decompress(raw, expectedSize: entry.size) } catch {
            throw .invalid(offset: entry.dataOffset, detail: "entry '\(entry.name)': \(error.detail)")
        }
    }
}
