import DLSupport
import DLTensor

/// Writes safetensors files laid out as the reference writer (huggingface/safetensors) lays them
/// out, so that the same tensors and metadata give the same bytes:
/// - the header JSON is compact, `__metadata__` first (keys sorted here; the reference's order is
///   a hash map's), then the tensors in data order;
/// - tensors are ordered by descending dtype alignment, then by name (compared as UTF-8 bytes);
/// - the JSON is padded with spaces to a multiple of 8 bytes, so the data section starts 8-aligned
///   and, with the ordering above, every tensor starts at a multiple of its element width;
/// - the data section is the tensors' bytes back to back.
public enum SafeTensorsWriter {
    /// Writes `tensors` and `metadata` to `path` atomically: into a temporary file in the same
    /// folder, synced, then renamed over `path`. Tensor bytes are streamed from their storage; no
    /// whole-file buffer is built. On any failure no file and no temporary file is left behind,
    /// and an existing file at `path` is untouched.
    ///
    /// - Parameters:
    ///   - tensors: names must be non-empty, unique and not `__metadata__`; dtypes must have a
    ///     safetensors name (not `string`). Their order does not matter (see the layout above).
    ///   - metadata: written as `__metadata__` when non-nil (even when empty, as the reference
    ///     writer does); PyTorch's convention is `["format": "pt"]`.
    /// - Throws: `SafeTensorsError.invalidName`, `.duplicateName`, `.unsupportedDType` before
    ///   anything is written; `.headerTooLarge` when the header would pass the reader's limit;
    ///   `.writeFailed` when the file system refuses.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)],
        metadata: [String: String]? = nil,
        to path: String
    ) throws(SafeTensorsError) {
        let ordered = try layoutOrder(tensors, path: path)
        let header = headerBytes(ordered, metadata: metadata)
        guard header.count <= SafeTensorsFile.maxHeaderLength else {
            throw .headerTooLarge(path: path, headerLength: UInt64(header.count), limit: SafeTensorsFile.maxHeaderLength)
        }

        let out: AtomicFileWriter
        do { out = try AtomicFileWriter(path: path) } catch { throw .writeFailed(path: path, reason: reason(error)) }
        do throws(AtomicFileError) {
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { (b: UnsafeRawBufferPointer) throws(AtomicFileError) in try out.write(b) }
            try out.write(header)
            for (_, t) in ordered {
                // In pieces, so that pages of a memory-mapped source can leave the resident set
                // as soon as they are written.
                if let source = t.mappedSource {
                    try out.copy(from: source.file.fileDescriptor, offset: source.offset, count: t.byteCount)
                    continue
                }
                let mapped = t.isMapped
                let failure = t.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> AtomicFileError? in
                    var done = 0
                    while done < bytes.count {
                        let piece = UnsafeRawBufferPointer(rebasing: bytes[done..<min(done + (1 << 22), bytes.count)])
                        do throws(AtomicFileError) { try out.write(piece) } catch { return error }
                        if mapped { MappedPages.release(piece) }
                        done += piece.count
                    }
                    return nil
                }
                if let failure { throw failure }
            }
            try out.commit()
        } catch {
            out.abandon()
            throw .writeFailed(path: path, reason: reason(error))
        }
    }

    /// The tensors in the order the reference writer stores them, after checking names and dtypes.
    static func layoutOrder(
        _ tensors: [(name: String, tensor: Tensor)], path: String
    ) throws(SafeTensorsError) -> [(name: String, tensor: Tensor)] {
        var seen = Set<String>()
        for (name, t) in tensors {
            if name.isEmpty {
                throw .invalidName(path: path, name: name, detail: "tensor names must not be empty")
            }
            if name == SafeTensorsFile.metadataKey {
                throw .invalidName(path: path, name: name, detail: "the name is reserved for the metadata")
            }
            guard seen.insert(name).inserted else { throw .duplicateName(path: path, name: name, offset: nil) }
            guard t.dtype.safetensorsName != nil else {
                throw .unsupportedDType(path: path, name: name, dtype: t.dtype)
            }
        }
        return tensors.sorted { a, b in
            let ra = alignmentRank(a.tensor.dtype), rb = alignmentRank(b.tensor.dtype)
            if ra != rb { return ra > rb }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The rank of a dtype in the reference implementation's ordering, which grows with alignment
    /// and breaks ties by the order its enum declares them (so that files come out byte-identical).
    static func alignmentRank(_ d: DType) -> Int {
        switch d {
        case .string: -10
        case .bool: 0
        case .uint8: 10
        case .int8: 20
        case .float8e5m2: 23
        case .float8e4m3fn: 25
        case .float8e8m0: 27
        case .int16: 30
        case .uint16: 40
        case .float16: 50
        case .bfloat16: 60
        case .int32: 70
        case .uint32: 80
        case .float32: 90
        case .float64: 100
        case .int64: 110
        case .uint64: 120
        // Not safetensors types (the writer refuses them before sorting).
        case .float8e4m3fnuz, .float8e5m2fnuz, .float4e2m1, .int4, .uint4, .int2, .uint2: -10
        }
    }

    /// The header JSON for tensors already in layout order, padded with spaces to a multiple of 8.
    static func headerBytes(_ ordered: [(name: String, tensor: Tensor)], metadata: [String: String]?) -> [UInt8] {
        var json = JSONWriter()
        json.raw("{")
        var first = true
        if let metadata {
            json.string(SafeTensorsFile.metadataKey)
            json.raw(":{")
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, k) in keys.enumerated() {
                if i > 0 { json.raw(",") }
                json.string(k)
                json.raw(":")
                json.string(metadata[k] ?? "")
            }
            json.raw("}")
            first = false
        }
        var offset = 0
        for (name, t) in ordered {
            if !first { json.raw(",") }
            first = false
            json.string(name)
            json.raw(":{\"dtype\":")
            json.string(t.dtype.safetensorsName ?? "")
            json.raw(",\"shape\":[")
            json.raw(t.shape.map(String.init).joined(separator: ","))
            json.raw("],\"data_offsets\":[")
            let end = offset + t.byteCount
            json.raw("\(offset),\(end)]}")
            offset = end
        }
        json.raw("}")
        let pad = (8 - json.bytes.count % 8) % 8
        json.bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: pad))
        return json.bytes
    }

    private static func reason(_ e: AtomicFileError) -> String {
        switch e {
        case .cannotCreate(_, let r), .writeFailed(_, let r): r
        }
    }
}

/// Builds compact JSON text as UTF-8 bytes.
struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Appends `s` as a JSON string: quote, backslash and the control characters below U+0020
    /// escaped (short forms where JSON has them, `\u00xx` otherwise), everything else as UTF-8.
    /// This is what serde_json emits, so headers match the reference writer's byte for byte.
    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                raw("\\u00")
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 0xF)])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
