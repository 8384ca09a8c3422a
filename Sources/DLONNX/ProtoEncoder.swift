import DLSupport
import DLTensor

/// A protobuf message being encoded: small byte runs plus tensors whose bytes are written straight
/// from their storage when the message is streamed, so weights are never copied into the output
/// buffer. Sizes of nested messages are known before they are written, as protobuf requires.
///
/// DLKit reads ONNX through protobuf-c but writes it with this encoder: protobuf-c packs a whole
/// message into one buffer (weights included) and caps it at 2 GiB; this one streams.
struct ProtoMessage {
    enum Chunk {
        case bytes([UInt8])
        case tensor(Tensor)
    }

    private(set) var chunks: [Chunk] = []
    private(set) var size = 0
    private var pending: [UInt8] = []

    enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    private mutating func tag(_ field: Int, _ wire: WireType) {
        varint(UInt64(field) << 3 | wire.rawValue)
    }

    private mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            pending.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        pending.append(UInt8(v))
    }

    private mutating func flush() {
        guard !pending.isEmpty else { return }
        size += pending.count
        chunks.append(.bytes(pending))
        pending = []
    }

    /// The message's total size, including bytes not yet flushed.
    var byteCount: Int { size + pending.count }

    mutating func int(_ field: Int, _ v: Int) {
        tag(field, .varint)
        varint(UInt64(bitPattern: Int64(v)))
    }

    mutating func float(_ field: Int, _ v: Float) {
        tag(field, .fixed32)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { pending.append(contentsOf: $0) }
    }

    mutating func string(_ field: Int, _ s: String) {
        bytes(field, Array(s.utf8))
    }

    /// A string field written only when the string is not empty (proto2 optional left unset).
    mutating func optionalString(_ field: Int, _ s: String) {
        if !s.isEmpty { string(field, s) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, .lengthDelimited)
        varint(UInt64(b.count))
        pending.append(contentsOf: b)
    }

    /// A bytes field holding a tensor's raw little-endian data, referenced rather than copied.
    mutating func tensorBytes(_ field: Int, _ t: Tensor) {
        tag(field, .lengthDelimited)
        varint(UInt64(t.byteCount))
        flush()
        if t.byteCount > 0 {
            chunks.append(.tensor(t))
            size += t.byteCount
        }
    }

    mutating func message(_ field: Int, _ m: ProtoMessage) {
        tag(field, .lengthDelimited)
        varint(UInt64(m.byteCount))
        flush()
        var m = m
        m.flush()
        chunks.append(contentsOf: m.chunks)
        size += m.size
    }

    /// Streams the message to `write`, tensor bytes straight from their storage.
    mutating func stream(_ write: (UnsafeRawBufferPointer) throws(AtomicFileError) -> Void) throws(AtomicFileError) {
        flush()
        for c in chunks {
            switch c {
            case .bytes(let b):
                var failure: AtomicFileError?
                b.withUnsafeBytes { buf in
                    do throws(AtomicFileError) { try write(buf) } catch { failure = error }
                }
                if let failure { throw failure }
            case .tensor(let t):
                var failure: AtomicFileError?
                t.withUnsafeBytes { buf in
                    do throws(AtomicFileError) { try write(buf) } catch { failure = error }
                }
                if let failure { throw failure }
            }
        }
    }

    /// The whole message in one array (for small messages such as a graph without weights).
    mutating func serialized() -> [UInt8] {
        flush()
        var out: [UInt8] = []
        out.reserveCapacity(size)
        for c in chunks {
            switch c {
            case .bytes(let b): out.append(contentsOf: b)
            case .tensor(let t): t.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }
}
