import DLTensor

/// Reads the entries of a `.keras` archive: a zip whose entries Keras writes uncompressed.
/// Only what that needs: the central directory (ZIP64 sizes included), stored entries, bounds
/// checked against the file.
struct StoredZip {
    let path: String
    let file: MappedFile
    private var entries: [String: (offset: Int, size: Int, method: Int)] = [:]

    init(path: String) throws(KerasError) {
        self.path = path
        do { file = try MappedFile(path: path) } catch { throw .archive(path: path, reason: "cannot open: \(error)") }
        let b = file.bytes
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> Int? {
            let v = UInt64(u32(o)) | UInt64(u32(o + 4)) << 32
            return v <= UInt64(Int.max) ? Int(v) : nil
        }
        // End of central directory: the last "PK\5\6" within the final 64 kB + 22 bytes.
        guard b.count >= 22 else { throw .archive(path: path, reason: "\(b.count) bytes is too short for a zip") }
        var eocd = -1
        var i = b.count - 22
        let lowest = max(0, b.count - 22 - 65_535)
        while i >= lowest {
            if b[i] == 0x50, b[i + 1] == 0x4B, b[i + 2] == 5, b[i + 3] == 6 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw .archive(path: path, reason: "no end of central directory (truncated?)") }
        var count = u16(eocd + 10)
        var cdOffset = u32(eocd + 16)
        if (count == 0xFFFF || cdOffset == 0xFFFF_FFFF), eocd >= 20, b[eocd - 20] == 0x50, b[eocd - 19] == 0x4B, b[eocd - 18] == 6, b[eocd - 17] == 7 {
            guard let rec = u64(eocd - 12), rec + 56 <= b.count, u32(rec) == 0x0606_4B50,
                  let c = u64(rec + 32), let o = u64(rec + 48) else {
                throw .archive(path: path, reason: "bad ZIP64 end record")
            }
            count = c
            cdOffset = o
        }
        guard count <= 100_000 else { throw .archive(path: path, reason: "\(count) entries is too many") }
        var p = cdOffset
        for n in 0..<count {
            guard p >= 0, p + 46 <= b.count, u32(p) == 0x0201_4B50 else {
                throw .archive(path: path, reason: "central directory entry \(n) at offset \(p) is damaged")
            }
            let method = u16(p + 10)
            var csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var local = u32(p + 42)
            guard p + 46 + nameLen + extraLen + commentLen <= b.count else {
                throw .archive(path: path, reason: "central directory entry \(n) runs past the end")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            // ZIP64 extra field (tag 1): the 0xFFFFFFFF fields in order usize, csize, offset.
            var e = p + 46 + nameLen
            let eEnd = e + extraLen
            while e + 4 <= eEnd {
                let tag = u16(e), len = u16(e + 2)
                guard e + 4 + len <= eEnd else { break }
                if tag == 1 {
                    var q = e + 4
                    if usize == 0xFFFF_FFFF, q + 8 <= e + 4 + len { usize = u64(q) ?? -1; q += 8 }
                    if csize == 0xFFFF_FFFF, q + 8 <= e + 4 + len { csize = u64(q) ?? -1; q += 8 }
                    if local == 0xFFFF_FFFF, q + 8 <= e + 4 + len { local = u64(q) ?? -1; q += 8 }
                }
                e += 4 + len
            }
            guard local >= 0, local + 30 <= b.count, u32(local) == 0x0403_4B50, csize >= 0 else {
                throw .archive(path: path, reason: "entry '\(name)': local header at offset \(local) is damaged")
            }
            let data = local + 30 + u16(local + 26) + u16(local + 28)
            guard data + csize <= b.count else {
                throw .archive(path: path, reason: "entry '\(name)': \(csize) bytes at offset \(data) run past the end (truncated?)")
            }
            _ = usize
            entries[name] = (data, csize, method)
            p += 46 + nameLen + extraLen + commentLen
        }
    }

    /// The bytes of an entry, nil when the archive has no such entry.
    func entry(_ name: String) throws(KerasError) -> [UInt8]? {
        guard let e = entries[name] else { return nil }
        guard e.method == 0 else {
            throw .archive(path: path, reason: "entry '\(name)' is compressed (method \(e.method)); Keras writes them stored")
        }
        return Array(file.bytes[e.offset..<(e.offset + e.size)])
    }
}
