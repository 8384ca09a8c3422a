import DLTensor
import Foundation

/// The bytes of an HDF5 file being read (a mapped file or a `.keras` archive's image), kept
/// alive beside the libhdf5 handle for the checks made while reading.
final class H5Bytes: @unchecked Sendable {
    private let mapped: MappedFile?
    private let owned: [UInt8]

    init(mapped: MappedFile) { self.mapped = mapped; owned = [] }
    init(owned: [UInt8]) { mapped = nil; self.owned = owned }

    func with<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        if let mapped { return try body(mapped.bytes) }
        // Arrays hand out their storage only through a non-throwing-generic closure: carry the
        // typed error out by hand.
        var result: Result<R, E>!
        owned.withUnsafeBytes { b in
            do throws(E) { result = .success(try body(b)) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}

/// What the structural check learned about a file: field widths, where addresses count from,
/// and every global heap collection (address -> object index -> object size).
struct H5Layout: Sendable {
    var offsetSize = 8
    var lengthSize = 8
    var base = 0
    /// The end of the file as both the superblock and the byte count allow.
    var end = 0
    var collections: [Int: [Int: Int]] = [:]
    /// The root group's object header address, when the superblock gives one.
    var root: Int?
}

/// Structural checks of HDF5 bytes made before libhdf5 reads them, for the structures the
/// system libhdf5 (1.10.8) trusts and then corrupts memory on (`Fuzz/libhdf5-crashes/`):
/// - the superblock (versions 0-3): field widths, and the end-of-file address against the real
///   byte count;
/// - every global heap collection (`GCOL`, where variable-length strings live): its size within
///   the file, and each object's size within its collection (libhdf5 copies an object by its
///   stated size: a lying size read or wrote far past the heap, `H5HG_read`);
/// - every local heap (`HEAP`, where group member names live): its data segment within the file
///   and ending in a NUL (libhdf5 `strdup`s names from it: an unterminated last name read past
///   the end, `H5MM_strdup`), its free list bounded and acyclic (libhdf5 walks it unbounded).
/// - every object header reachable from the root through old-style groups (symbol table B-trees
///   and nodes) and compact links: its chunks and continuation chunks within the file (libhdf5
///   allocates a chunk by its stated size, 2 GiB on a fuzzed file).
/// Heaps are found by scanning for their signatures with the version byte that follows, so
/// heaps no pointer reaches are checked too; random data matching the 5-byte pattern and
/// failing the checks would refuse a file, which for a 100 MB file of weights happens about once
/// in ten thousand.
///
/// Variable-length attribute values (sequence length, collection, object index) are checked
/// against the collections just before they are read (`H5Reader.checkVariableLength`).
///
/// This narrows what reaches libhdf5; it cannot make libhdf5 safe. Untrusted files belong in a
/// separate process (DLKit's `KerasIsolation`).
enum HDF5Check {
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    static func check(_ b: UnsafeRawBufferPointer) throws(H5Failure) -> H5Layout {
        var layout = try superblock(b)
        try globalHeaps(b, &layout)
        try localHeaps(b, layout)
        if let root = layout.root { try objects(b, layout, root: root) }
        return layout
    }

    static func fail(_ offset: Int, _ reason: String) -> H5Failure {
        H5Failure(object: "/", reason: reason, offset: offset)
    }

    /// A little-endian unsigned field of `width` bytes at `at`; nil past the end or above Int.max.
    static func uint(_ b: UnsafeRawBufferPointer, _ at: Int, _ width: Int) -> Int? {
        guard at >= 0, width <= 8, at <= b.count - width else { return nil }
        var v: UInt64 = 0
        for i in (0..<width).reversed() { v = v << 8 | UInt64(b[at + i]) }
        // The undefined address (all ones) reads as nil too.
        guard v <= UInt64(Int.max) else { return nil }
        return Int(v)
    }

    static func superblock(_ b: UnsafeRawBufferPointer) throws(H5Failure) -> H5Layout {
        // libhdf5 looks at 0, 512, 1024, 2048, ...
        var at = 0
        while true {
            guard at <= b.count - 8 else { throw fail(0, "no HDF5 signature (not an HDF5 file)") }
            if (0..<8).allSatisfy({ b[at + $0] == signature[$0] }) { break }
            at = at == 0 ? 512 : at * 2
        }
        guard at + 12 <= b.count else { throw fail(at, "the superblock is cut off") }
        let version = Int(b[at + 8])
        var layout = H5Layout()
        let fields: Int
        switch version {
        case 0, 1:
            guard at + 24 <= b.count else { throw fail(at, "the superblock is cut off") }
            layout.offsetSize = Int(b[at + 13])
            layout.lengthSize = Int(b[at + 14])
            fields = at + (version == 0 ? 24 : 28)
        case 2, 3:
            layout.offsetSize = Int(b[at + 9])
            layout.lengthSize = Int(b[at + 10])
            fields = at + 12
        default:
            throw fail(at + 8, "superblock version \(version) is not one of 0-3")
        }
        guard [2, 4, 8].contains(layout.offsetSize), [2, 4, 8].contains(layout.lengthSize) else {
            throw fail(at + 9, "sizes of offsets \(layout.offsetSize) and lengths \(layout.lengthSize) are not 2, 4 or 8")
        }
        let o = layout.offsetSize
        guard let base = uint(b, fields, o) else { throw fail(fields, "the superblock's base address is cut off or undefined") }
        // v0/1: base, free-space info, end of file; v2/3: base, superblock extension, end of file.
        let eofAt = fields + 2 * o
        guard let eof = uint(b, eofAt, o) else { throw fail(eofAt, "the superblock's end-of-file address is cut off or undefined") }
        let (end, overflow) = base.addingReportingOverflow(eof)
        guard !overflow, end <= b.count else {
            throw fail(eofAt, "the superblock gives the file \(overflow ? "an impossible" : String(end)) bytes, it has \(b.count) (truncated?)")
        }
        layout.base = base
        layout.end = end
        // v0/1: after base, free space, end of file and driver info, the root's symbol table
        // entry (link name offset, then object header address); v2/3: after base, extension and
        // end of file, the root's object header address.
        layout.root = uint(b, version <= 1 ? fields + 5 * o : fields + 3 * o, o)
        return layout
    }

    /// Every offset at which `needle` followed by `next` starts.
    static func occurrences(_ b: UnsafeRawBufferPointer, _ needle: [UInt8], followedBy next: UInt8) -> [Int] {
        guard let base = b.baseAddress, b.count >= needle.count + 1 else { return [] }
        var out: [Int] = []
        var from = 0
        while from <= b.count - needle.count - 1 {
            // memchr finds the first byte fast; the rest is compared here.
            guard let hit = memchr(base + from, Int32(needle[0]), b.count - from) else { break }
            let at = base.distance(to: UnsafeRawPointer(hit))
            guard at <= b.count - needle.count - 1 else { break }
            if (1..<needle.count).allSatisfy({ b[at + $0] == needle[$0] }), b[at + needle.count] == next { out.append(at) }
            from = at + 1
        }
        return out
    }

    static func align8(_ n: Int) -> Int? {
        let (v, o) = n.addingReportingOverflow(7)
        return o ? nil : v & ~7
    }

    /// Global heap collections: "GCOL", version 1, 3 reserved bytes, collection size (a length,
    /// header included), then objects: index (2), reference count (2), reserved (4), size (a
    /// length), the data padded to 8 bytes. Object 0 is the free space; its size counts its header.
    static func globalHeaps(_ b: UnsafeRawBufferPointer, _ layout: inout H5Layout) throws(H5Failure) {
        let l = layout.lengthSize
        guard let header = align8(8 + l), let objectHeader = align8(8 + l) else { return }
        // Past the end-of-file address libhdf5 reads nothing: bytes there are not checked.
        for at in occurrences(b, Array("GCOL".utf8), followedBy: 1) where at < layout.end {
            guard let size = uint(b, at + 8, l) else { throw fail(at, "global heap collection: its size is cut off") }
            guard size >= header, size <= layout.end - at else {
                throw fail(at, "global heap collection of \(size) bytes does not fit in the file (\(layout.end) bytes)")
            }
            let limit = at + size
            var p = at + header
            var objects: [Int: Int] = [:]
            while p < limit {
                // Too little room for an object header: libhdf5 takes the rest as free space.
                if p + objectHeader > limit { break }
                let index = Int(b[p]) | Int(b[p + 1]) << 8
                guard let objectSize = uint(b, p + 8, l) else {
                    throw fail(p, "global heap object \(index): its size is out of range")
                }
                let need: Int
                if index > 0 {
                    guard let padded = align8(objectSize), padded <= limit - p - objectHeader else {
                        throw fail(p, "global heap object \(index) of \(objectSize) bytes runs past its collection (which ends at byte \(limit))")
                    }
                    guard objects[index] == nil else { throw fail(p, "global heap object \(index) appears twice in its collection") }
                    objects[index] = objectSize
                    need = objectHeader + padded
                } else {
                    // The free space: its size counts its own header and must end in the collection.
                    guard objectSize >= objectHeader, objectSize <= limit - p else {
                        throw fail(p, "global heap free space of \(objectSize) bytes does not fit its collection (which ends at byte \(limit))")
                    }
                    need = objectSize
                }
                p += need
            }
            layout.collections[at - layout.base] = objects
        }
    }

    /// Local heaps: "HEAP", version 0, 3 reserved bytes, data segment size (a length), offset of
    /// the first free block (a length; 1 = none), data segment address (an offset). A free block
    /// holds the offset of the next free block and its own size (two lengths).
    static func localHeaps(_ b: UnsafeRawBufferPointer, _ layout: H5Layout) throws(H5Failure) {
        let l = layout.lengthSize, o = layout.offsetSize
        for at in occurrences(b, Array("HEAP".utf8), followedBy: 0) where at < layout.end {
            guard let size = uint(b, at + 8, l), let free = uint(b, at + 8 + l, l) else {
                throw fail(at, "local heap: its sizes are cut off or out of range")
            }
            if size == 0 { continue }
            guard let address = uint(b, at + 8 + 2 * l, o) else {
                throw fail(at, "local heap: its data address is cut off or undefined")
            }
            let (start, overflow) = layout.base.addingReportingOverflow(address)
            guard !overflow, size <= layout.end, start <= layout.end - size else {
                throw fail(at, "local heap data of \(size) bytes at address \(address) does not fit in the file (\(layout.end) bytes)")
            }
            guard b[start + size - 1] == 0 else {
                throw fail(start + size - 1, "local heap data does not end in a NUL (an unterminated name)")
            }
            var next = free, steps = 0
            while next != 1 {
                steps += 1
                guard steps <= size / (2 * l) + 1, next <= size - 2 * l else {
                    throw fail(at, "local heap free list is cyclic or runs past the data (block at \(next))")
                }
                guard let following = uint(b, start + next, l), let blockSize = uint(b, start + next + l, l),
                      blockSize <= size - next else {
                    throw fail(start + next, "local heap free block runs past the data")
                }
                next = following
            }
        }
    }
}

extension HDF5Check {
    /// Checks the stored values of the variable-length attribute `name` of the object whose
    /// header is at `address` before libhdf5 converts them: libhdf5 1.10.8 copies a global heap
    /// object by the object's own size into a buffer sized by the value's sequence length, so
    /// every value must name an object of a checked collection whose size is exactly its length.
    /// An attribute not found in the header (dense attribute storage, which Keras files do not
    /// use) is left to libhdf5.
    static func variableLengthAttribute(_ b: UnsafeRawBufferPointer, _ layout: H5Layout, header address: Int, name: String) throws(H5Failure) {
        guard let message = try attributeMessage(b, layout, header: address, name: Array(name.utf8)) else { return }
        try checkValues(b, layout, message: message)
    }

    /// The bytes of the attribute message named `name` in the object header at `address`.
    static func attributeMessage(_ b: UnsafeRawBufferPointer, _ layout: H5Layout, header address: Int, name: [UInt8]) throws(H5Failure) -> Range<Int>? {
        for (type, body) in try messages(b, layout, header: address) where type == 0x0C && body.count >= 8 {
            let v = Int(b[body.lowerBound])
            guard let nameSize = uint(b, body.lowerBound + 2, 2), nameSize >= 1 else { continue }
            let nameAt = body.lowerBound + (v == 3 ? 9 : 8)
            guard nameAt + nameSize <= body.upperBound else { continue }
            let stored = UnsafeRawBufferPointer(rebasing: b[nameAt..<(nameAt + nameSize)])
            if stored.prefix(while: { $0 != 0 }).elementsEqual(name) { return body }
        }
        return nil
    }

    /// The messages (type, body) of the object header at `address`, continuation chunks
    /// followed; chunks and messages that do not fit the file are refused.
    static func messages(_ b: UnsafeRawBufferPointer, _ layout: H5Layout, header address: Int) throws(H5Failure) -> [(Int, Range<Int>)] {
        var out: [(Int, Range<Int>)] = []
        let o = layout.offsetSize, l = layout.lengthSize
        let start = layout.base + address
        guard start >= 0, start < layout.end else { throw fail(start, "object header address \(address) is outside the file") }
        // Chunks to read: (range, version); continuation messages add more.
        var chunks: [(Range<Int>, Int)] = []
        // Version 2 headers: bit 2 of the header's flags adds a creation order to each message.
        var creationOrder = false
        let version2 = start + 4 <= layout.end && b[start] == 0x4F && b[start + 1] == 0x48 && b[start + 2] == 0x44 && b[start + 3] == 0x52
        if version2 {
            guard start + 6 <= layout.end else { throw fail(start, "object header is cut off") }
            let flags = Int(b[start + 5])
            creationOrder = flags & 0x04 != 0
            var p = start + 6
            if flags & 0x20 != 0 { p += 16 }
            if flags & 0x10 != 0 { p += 4 }
            let width = 1 << (flags & 3)
            guard let size = uint(b, p, width), size <= layout.end - p - width - 4 else {
                throw fail(start, "object header chunk does not fit in the file")
            }
            chunks.append(((p + width)..<(p + width + size), 2))
        } else {
            guard start + 16 <= layout.end, b[start] == 1, let size = uint(b, start + 8, 4), size <= layout.end - start - 16 else {
                throw fail(start, "object header (version 1) does not fit in the file")
            }
            chunks.append(((start + 16)..<(start + 16 + size), 1))
        }
        var seen: Set<Int> = [chunks[0].0.lowerBound]
        var next = 0
        while next < chunks.count {
            let (range, version) = chunks[next]
            next += 1
            var p = range.lowerBound
            if version == 2 && next > 1 { p += 4 }  // "OCHK"
            let end = version == 2 ? range.upperBound - (next > 1 ? 4 : 0) : range.upperBound
            while true {
                let type: Int, size: Int, body: Int
                if version == 1 {
                    guard p + 8 <= end, let t = uint(b, p, 2), let s = uint(b, p + 2, 2) else { break }
                    type = t; size = s; body = p + 8
                } else {
                    guard p + 4 <= end, let s = uint(b, p + 1, 2) else { break }
                    type = Int(b[p]); size = s
                    body = p + 4 + (creationOrder ? 2 : 0)
                }
                guard body + size <= end else { throw fail(p, "object header message of \(size) bytes runs past its chunk") }
                if type == 0x10 {
                    // Continuation: the next chunk's address and length.
                    guard let a = uint(b, body, o), let n = uint(b, body + o, l) else { throw fail(body, "continuation message is damaged") }
                    let s = layout.base.addingReportingOverflow(a)
                    guard !s.overflow, s.partialValue >= 0, n <= layout.end, s.partialValue <= layout.end - n else {
                        throw fail(body, "continuation chunk of \(n) bytes at address \(a) does not fit in the file")
                    }
                    guard seen.insert(s.partialValue).inserted, chunks.count < 10_000 else { throw fail(body, "continuation chunks form a cycle") }
                    chunks.append((s.partialValue..<(s.partialValue + n), version))
                } else {
                    out.append((type, body..<(body + size)))
                }
                p = body + size
            }
        }
        return out
    }

    /// Walks the objects reachable through old-style groups (symbol tables: a version 1 B-tree
    /// of symbol nodes naming object headers) and compact links from the root, checking each
    /// object header's chunks against the file before libhdf5 allocates them (it allocates a
    /// chunk by its stated size). Dense link storage (fractal heaps) is left to libhdf5.
    static func objects(_ b: UnsafeRawBufferPointer, _ layout: H5Layout, root: Int) throws(H5Failure) {
        let o = layout.offsetSize, l = layout.lengthSize
        var pending = [root]
        var seen: Set<Int> = []
        var nodes: Set<Int> = []
        func address(_ at: Int) -> Int? {
            guard let a = uint(b, at, o) else { return nil }
            let (v, overflow) = layout.base.addingReportingOverflow(a)
            return overflow || v >= layout.end ? nil : a
        }
        while let header = pending.popLast() {
            guard seen.insert(header).inserted else { continue }
            guard seen.count <= 200_000 else { throw fail(0, "more than 200000 objects") }
            for (type, body) in try messages(b, layout, header: header) {
                if type == 0x0C {
                    guard body.count >= 8 else { throw fail(body.lowerBound, "attribute message of \(body.count) bytes is cut off") }
                    try checkValues(b, layout, message: body)
                } else if type == 0x11, body.count >= 2 * o {
                    // Symbol table: the group's B-tree (its local heap was checked by the scan).
                    guard let tree = address(body.lowerBound) else { throw fail(body.lowerBound, "symbol table B-tree address is outside the file") }
                    var trees = [tree]
                    while let node = trees.popLast() {
                        guard nodes.insert(node).inserted else { throw fail(layout.base + node, "group B-tree nodes form a cycle") }
                        let at = layout.base + node
                        guard at + 8 <= layout.end, b[at] == 0x54, b[at + 1] == 0x52, b[at + 2] == 0x45, b[at + 3] == 0x45 else {
                            throw fail(at, "group B-tree node has no TREE signature")
                        }
                        let level = Int(b[at + 5]), used = Int(b[at + 6]) | Int(b[at + 7]) << 8
                        // Keys (lengths) and children (offsets) alternate after the two siblings.
                        let first = at + 8 + 2 * o
                        guard first + (used + 1) * l + used * o <= layout.end else { throw fail(at, "group B-tree node runs past the file") }
                        for i in 0..<used {
                            guard let child = address(first + l + i * (l + o)) else { throw fail(at, "group B-tree child \(i) is outside the file") }
                            if level > 0 { trees.append(child); continue }
                            let sn = layout.base + child
                            guard sn + 8 <= layout.end, b[sn] == 0x53, b[sn + 1] == 0x4E, b[sn + 2] == 0x4F, b[sn + 3] == 0x44 else {
                                throw fail(sn, "symbol table node has no SNOD signature")
                            }
                            let count = Int(b[sn + 6]) | Int(b[sn + 7]) << 8
                            let entry = 2 * o + 24
                            guard sn + 8 + count * entry <= layout.end else { throw fail(sn, "symbol table node runs past the file") }
                            for e in 0..<count {
                                // Cache type 2 is a soft link: a name in the heap, no header address.
                                if uint(b, sn + 8 + e * entry + 2 * o, 4) == 2 { continue }
                                guard let object = address(sn + 8 + e * entry + o) else { throw fail(sn, "symbol \(e) names an object outside the file") }
                                pending.append(object)
                            }
                        }
                    }
                } else if type == 0x06, body.count >= 2, b[body.lowerBound] == 1 {
                    // Link message: version 1, flags, [type], [creation order], [charset], name
                    // length, name, then a hard link's object header address.
                    let flags = Int(b[body.lowerBound + 1])
                    var p = body.lowerBound + 2
                    var linkType = 0
                    if flags & 0x08 != 0 { linkType = Int(b[min(p, body.upperBound - 1)]); p += 1 }
                    if flags & 0x04 != 0 { p += 8 }
                    if flags & 0x10 != 0 { p += 1 }
                    let width = 1 << (flags & 3)
                    guard linkType == 0, let n = uint(b, p, width), p + width + n + o <= body.upperBound else { continue }
                    if let object = address(p + width + n) { pending.append(object) }
                }
            }
        }
    }

    /// Checks one attribute message (versions 1-3): its parts within the message, its name
    /// terminated, its values within the message, and variable-length values against the
    /// global heap objects they name.
    static func checkValues(_ b: UnsafeRawBufferPointer, _ layout: H5Layout, message m: Range<Int>) throws(H5Failure) {
        let o = layout.offsetSize, l = layout.lengthSize
        let at = m.lowerBound
        let version = Int(b[at]), flags = Int(b[at + 1])
        guard (1...3).contains(version) else { throw fail(at, "attribute message version \(version) is not one of 1-3") }
        // Shared datatypes or dataspaces are stored elsewhere: leave them to libhdf5.
        if version >= 2 && flags & 3 != 0 { return }
        guard let nameSize = uint(b, at + 2, 2), let typeSize = uint(b, at + 4, 2), let spaceSize = uint(b, at + 6, 2) else {
            throw fail(at, "attribute message is cut off")
        }
        let pad: (Int) -> Int = { version == 1 ? ($0 + 7) & ~7 : $0 }
        let typeAt = at + (version == 3 ? 9 : 8) + pad(nameSize)
        let spaceAt = typeAt + pad(typeSize)
        let dataAt = spaceAt + pad(spaceSize)
        guard typeSize >= 8, spaceSize >= 4, dataAt <= m.upperBound else { throw fail(at, "attribute message parts run past the message") }
        // libhdf5 copies the name with strdup: it must end within its field.
        let nameAt = at + (version == 3 ? 9 : 8)
        guard nameSize > 0, (nameAt..<(nameAt + nameSize)).contains(where: { b[$0] == 0 }) else {
            throw fail(nameAt, "attribute name is not terminated within its \(nameSize) bytes")
        }
        // Dataspace: version, rank, flags; version 1 has 5 reserved bytes, version 2 a type byte.
        let spaceVersion = Int(b[spaceAt]), rank = Int(b[spaceAt + 1])
        guard spaceVersion == 1 || spaceVersion == 2, rank <= 32 else { throw fail(spaceAt, "attribute dataspace version \(spaceVersion) rank \(rank) is not readable") }
        var count = 1
        if spaceVersion == 2 && b[spaceAt + 3] == 2 {
            count = 0  // null dataspace: no values
        } else {
            let dimsAt = spaceAt + (spaceVersion == 1 ? 8 : 4)
            guard dimsAt + rank * l <= spaceAt + spaceSize else { throw fail(spaceAt, "attribute dataspace runs past its size") }
            for i in 0..<rank {
                guard let d = uint(b, dimsAt + i * l, l) else { throw fail(dimsAt, "attribute dimension is out of range") }
                let r = count.multipliedReportingOverflow(by: d)
                guard !r.overflow else { throw fail(dimsAt, "attribute element count overflows") }
                count = r.partialValue
            }
        }
        // Datatype: class in the low 4 bits, element size at 4; variable-length (class 9) values
        // are stored as length, collection address and object index, its base type follows at 8.
        let isVariable = b[typeAt] & 0x0F == 9
        guard let typeWidth = uint(b, typeAt + 4, 4) else { throw fail(typeAt, "attribute datatype is damaged") }
        let width = isVariable ? 8 + o : typeWidth
        guard width == 0 || count <= (m.upperBound - dataAt) / width else {
            throw fail(dataAt, "attribute holds \(count) values of \(width) bytes, its message only room for \(m.upperBound - dataAt) bytes")
        }
        guard isVariable else { return }
        // The base type's element size counts for strings too: libhdf5 sizes its conversion
        // buffer as length x base size (a fuzzed 4 GiB "character" asked for 22 GB).
        guard typeSize >= 16, let baseSize = uint(b, typeAt + 12, 4), baseSize > 0 else {
            throw fail(typeAt, "variable-length base type is damaged")
        }
        for i in 0..<count {
            let e = dataAt + i * width
            guard let length = uint(b, e, 4), let index = uint(b, e + 4 + o, 4) else { throw fail(e, "variable-length value is damaged") }
            let address = uint(b, e + 4, o)
            if length == 0 && (address ?? 0) == 0 { continue }
            guard let address, let collection = layout.collections[address] else {
                throw fail(e, "variable-length value \(i) points at address \(address.map(String.init) ?? "undefined") where no global heap collection is")
            }
            guard let size = collection[index] else {
                throw fail(e, "variable-length value \(i) names object \(index), which its global heap collection lacks")
            }
            let want = length.multipliedReportingOverflow(by: baseSize)
            guard !want.overflow, want.partialValue == size else {
                throw fail(e, "variable-length value \(i) has \(length) elements\(baseSize == 1 ? "" : " of \(baseSize) bytes") but its global heap object holds \(size) bytes")
            }
        }
    }
}
