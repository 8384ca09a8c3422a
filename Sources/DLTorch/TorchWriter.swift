import DLSupport
import DLTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `torch.save` files in the zip format torch 2.x writes, so that
/// `torch.load(path, weights_only=True)` returns the same tensors under the same names and dtypes.
///
/// Layout, as torch lays it out: entries `<archive>/data.pkl` (protocol 2), `.format_version`
/// ("1"), `.storage_alignment` ("64"), `byteorder` ("little"), `data/0`, `data/1`, ... (one per
/// tensor), `version` ("3"), `.data/serialization_id`; all stored, each entry's data starting at a
/// multiple of 64 (padding in an "FB" extra field of 'Z' bytes); local headers with zero sizes and
/// a data descriptor after the data; central directory, ZIP64 end record and locator, end record.
/// Tensor bytes stream from their storage (memory-mapped sources are not loaded first) and the
/// file appears atomically.
public enum TorchWriter {
    /// Writes `tensors` as a state dict (an `OrderedDict` of name → tensor).
    public static func write(stateDict tensors: NamedTensors, to path: String, archiveName: String? = nil) throws(TorchError) {
        let entries = tensors.map { TorchDictEntry(.string($0.name), .tensorData($0.tensor)) }
        try write(.dict(entries), to: path, archiveName: archiveName, orderedRoot: true)
    }

    /// Writes any value made of containers, numbers, strings and `.tensorData` tensors (a nested
    /// checkpoint, an optimizer state dict). Dicts become plain `dict`s except the root when
    /// `orderedRoot` is set.
    /// - Parameter archiveName: the folder inside the zip; torch uses the file name without extension.
    public static func write(_ value: TorchValue, to path: String, archiveName: String? = nil, orderedRoot: Bool = false) throws(TorchError) {
        try write(value, to: path, archiveName: archiveName, orderedRoot: orderedRoot, forceZip64: false)
    }

    static func write(_ value: TorchValue, to path: String, archiveName: String?, orderedRoot: Bool, forceZip64: Bool) throws(TorchError) {
        var pickle = PickleWriter(path: path)
        try pickle.put(value, ordered: orderedRoot)
        let pkl = pickle.finish()
        let archive = archiveName ?? defaultArchiveName(path)

        let out: AtomicFileWriter
        do { out = try AtomicFileWriter(path: path) } catch { throw .writeFailed(path: path, reason: error.description) }
        var zip = ZipStreamWriter(out: out, forceZip64: forceZip64)
        do throws(AtomicFileError) {
            try zip.add("\(archive)/data.pkl", pkl)
            try zip.add("\(archive)/.format_version", Array("1".utf8))
            try zip.add("\(archive)/.storage_alignment", Array("64".utf8))
            try zip.add("\(archive)/byteorder", Array("little".utf8))
            for (i, t) in pickle.storages.enumerated() {
                let source = t.mappedSource
                let failure = t.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> AtomicFileError? in
                    do throws(AtomicFileError) {
                        try zip.add("\(archive)/data/\(i)", b, mappedFrom: source.map { ($0.file.fileDescriptor, $0.offset) })
                    } catch { return error }
                    return nil
                }
                if let failure { throw failure }
            }
            try zip.add("\(archive)/version", Array("3\n".utf8))
            try zip.add("\(archive)/.data/serialization_id", Array(serializationID().utf8))
            try zip.finish()
            try out.commit()
        } catch {
            out.abandon()
            throw .writeFailed(path: path, reason: error.description)
        }
    }

    /// The file name without folder and extension, made safe as a zip folder name.
    static func defaultArchiveName(_ path: String) -> String {
        var base = path.split(separator: "/").last.map(String.init) ?? "archive"
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
        let safe = String(base.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
        return safe.isEmpty ? "archive" : safe
    }

    /// 40 decimal digits, as torch writes in `.data/serialization_id`.
    static func serializationID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<40).map { _ in String(Int.random(in: 0...9, using: &g)) }.joined()
    }
}

/// Appends stored zip entries to a file and closes the archive with its directory.
struct ZipStreamWriter {
    let out: AtomicFileWriter
    /// Use the ZIP64 forms for every entry, not only those past 4 GB (tests exercise them so).
    let forceZip64: Bool
    private var central: [UInt8] = []
    private var count = 0

    init(out: AtomicFileWriter, forceZip64: Bool = false) {
        self.out = out
        self.forceZip64 = forceZip64
    }

    mutating func add(_ name: String, _ data: [UInt8]) throws(AtomicFileError) {
        let failure = data.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> AtomicFileError? in
            do throws(AtomicFileError) { try add(name, b) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// - Parameter mappedFrom: when the bytes are a read-only mapping of a file (its descriptor and
    ///   their offset in it), they are checksummed through the mapping but copied file to file in
    ///   the kernel, and their pages leave the resident set once done (`MappedPages.release`).
    mutating func add(_ name: String, _ data: UnsafeRawBufferPointer, mappedFrom: (fd: Int32, offset: Int)? = nil) throws(AtomicFileError) {
        let offset = out.bytesWritten
        let nameBytes = Array(name.utf8)
        let size = data.count
        let big = size >= 0xFFFF_FFFF || forceZip64
        let farOffset = offset >= 0xFFFF_FFFF || forceZip64
        // A ZIP64 entry announces itself in the local header (sizes zero: the descriptor has them).
        var zip64Local: [UInt8] = []
        if big {
            le16(&zip64Local, 0x0001); le16(&zip64Local, 16)
            le64(&zip64Local, 0); le64(&zip64Local, 0)
        }
        // Pad with an "FB" extra field so the data starts at a multiple of 64.
        let headerEnd = offset + 30 + nameBytes.count + zip64Local.count + 4
        let pad = (64 - headerEnd % 64) % 64
        var h: [UInt8] = []
        h.reserveCapacity(34 + nameBytes.count + pad)
        le32(&h, 0x0403_4B50)
        le16(&h, 0); le16(&h, 0x0808); le16(&h, 0); le16(&h, 0); le16(&h, 0)  // version, flags, stored, time, date
        le32(&h, 0); le32(&h, 0); le32(&h, 0)  // crc and sizes follow the data
        le16(&h, nameBytes.count); le16(&h, zip64Local.count + 4 + pad)
        h += nameBytes
        h += zip64Local
        h += [0x46, 0x42]  // "FB"
        le16(&h, pad)
        h += repeatElement(UInt8(ascii: "Z"), count: pad)
        try out.write(h)

        var crc = CRC32()
        // Checksum and write in pieces so a large mapped tensor is touched once, in order.
        let chunk = 1 << 22
        var done = 0
        while done < data.count {
            let piece = UnsafeRawBufferPointer(rebasing: data[done..<min(done + chunk, data.count)])
            crc.update(piece)
            if let src = mappedFrom {
                try out.copy(from: src.fd, offset: src.offset + done, count: piece.count)
                MappedPages.release(piece)
            } else {
                try out.write(piece)
            }
            done += piece.count
        }
        var d: [UInt8] = []
        le32(&d, 0x0807_4B50)
        le32(&d, crc.value)
        if big { le64(&d, size); le64(&d, size) } else { le32(&d, UInt32(size)); le32(&d, UInt32(size)) }
        try out.write(d)

        var extra: [UInt8] = []
        if big || farOffset {
            var fields: [UInt8] = []
            if big { le64(&fields, size); le64(&fields, size) }
            if farOffset { le64(&fields, offset) }
            le16(&extra, 0x0001); le16(&extra, fields.count)
            extra += fields
        }
        le32(&central, 0x0201_4B50)
        le16(&central, 0); le16(&central, big || farOffset ? 45 : 0); le16(&central, 0x0808); le16(&central, 0)
        le16(&central, 0); le16(&central, 0)
        le32(&central, crc.value)
        le32(&central, big ? 0xFFFF_FFFF : UInt32(size)); le32(&central, big ? 0xFFFF_FFFF : UInt32(size))
        le16(&central, nameBytes.count); le16(&central, extra.count); le16(&central, 0)
        le16(&central, 0); le16(&central, 0); le32(&central, 0)
        le32(&central, farOffset ? 0xFFFF_FFFF : UInt32(offset))
        central += nameBytes
        central += extra
        count += 1
    }

    /// Writes the central directory, the ZIP64 end record and locator, and the end record.
    mutating func finish() throws(AtomicFileError) {
        let cdOffset = out.bytesWritten
        try out.write(central)
        let z64 = out.bytesWritten
        var e: [UInt8] = []
        le32(&e, 0x0606_4B50); le64(&e, 44); le16(&e, 0x031E); le16(&e, 45); le32(&e, 0); le32(&e, 0)
        le64(&e, count); le64(&e, count); le64(&e, central.count); le64(&e, cdOffset)
        le32(&e, 0x0706_4B50); le32(&e, 0); le64(&e, z64); le32(&e, 1)
        le32(&e, 0x0605_4B50); le16(&e, 0); le16(&e, 0)
        let n = forceZip64 ? 0xFFFF : min(count, 0xFFFF)
        le16(&e, n); le16(&e, n)
        le32(&e, forceZip64 ? 0xFFFF_FFFF : UInt32(min(central.count, 0xFFFF_FFFF)))
        le32(&e, forceZip64 ? 0xFFFF_FFFF : UInt32(min(cdOffset, 0xFFFF_FFFF)))
        le16(&e, 0)
        try out.write(e)
    }
}

private func le16(_ b: inout [UInt8], _ v: Int) { b += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
private func le32(_ b: inout [UInt8], _ v: UInt32) { for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
private func le64(_ b: inout [UInt8], _ v: Int) { for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: UInt64(v) >> (8 * UInt64(i)))) } }
