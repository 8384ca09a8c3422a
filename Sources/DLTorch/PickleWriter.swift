import DLTensor

/// Encodes values as a protocol-2 pickle the way `torch.save` does: tensors as
/// `torch._utils._rebuild_tensor_v2` (or `_v3` for uint16/32/64) over a persistent-id storage
/// `('storage', torch.<X>Storage, '<key>', 'cpu', numel)`, one storage per tensor, keys "0", "1", ...
struct PickleWriter {
    var bytes: [UInt8] = [0x80, 0x02]
    /// The tensors whose bytes become `data/<index>`.
    var storages: [Tensor] = []
    private var memo: [String: Int] = [:]
    let path: String

    init(path: String) { self.path = path }

    mutating func finish() -> [UInt8] {
        bytes.append(0x2E)
        return bytes
    }

    mutating func put(_ v: TorchValue, ordered: Bool = false, depth: Int = 0) throws(TorchError) {
        guard depth < Unpickler.maxDepth else { throw .unwritable(path: path, detail: "values nest deeper than \(Unpickler.maxDepth) levels") }
        switch v {
        case .none: bytes.append(0x4E)
        case .bool(let b): bytes.append(b ? 0x88 : 0x89)
        case .int(let i): int(i)
        case .bigInt(let b):
            guard b.count <= 255 else { throw .unwritable(path: path, detail: "an integer of \(b.count) bytes") }
            bytes += [0x8A, UInt8(b.count)] + b
        case .float(let d):
            bytes.append(0x47)
            let bits = d.bitPattern
            for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        case .complex(let r, let i):
            global("builtins", "complex")
            try put(.tuple([.float(r), .float(i)]), depth: depth + 1)
            bytes.append(0x52)
        case .string(let s): string(s)
        case .bytes(let b):
            // Protocol 2 has no bytes opcode; torch and pickle write _codecs.encode(latin-1 text).
            global("_codecs", "encode")
            string(String(String.UnicodeScalarView(b.map { Unicode.Scalar($0) })))
            string("latin1")
            bytes += [0x86, 0x52]
        case .tuple(let items):
            switch items.count {
            case 0: bytes.append(0x29)
            case 1...3:
                for i in items { try put(i, depth: depth + 1) }
                bytes.append([0x85, 0x86, 0x87][items.count - 1])
            default:
                bytes.append(0x28)
                for i in items { try put(i, depth: depth + 1) }
                bytes.append(0x74)
            }
        case .list(let items):
            bytes.append(0x5D)
            for chunk in stride(from: 0, to: items.count, by: 1000) {
                bytes.append(0x28)
                for i in items[chunk..<min(chunk + 1000, items.count)] { try put(i, depth: depth + 1) }
                bytes.append(0x65)
            }
        case .set(let items):
            global("builtins", "set")
            try put(.tuple([.list(items)]), depth: depth + 1)
            bytes.append(0x52)
        case .dict(let entries):
            if ordered {
                global("collections", "OrderedDict")
                bytes += [0x29, 0x52]
            } else {
                bytes.append(0x7D)
            }
            for chunk in stride(from: 0, to: entries.count, by: 1000) {
                bytes.append(0x28)
                for e in entries[chunk..<min(chunk + 1000, entries.count)] {
                    try put(e.key, depth: depth + 1)
                    try put(e.value, depth: depth + 1)
                }
                bytes.append(0x75)
            }
        case .tensorData(let t): try tensor(t)
        case .tensor:
            throw .unwritable(path: path, detail: "a tensor record not read from its file; pass tensors by value")
        case .dtype(let d):
            global("torch", d.name)
        case .device(let d):
            global("torch", "device")
            try put(.tuple([.string(d)]), depth: depth + 1)
            bytes.append(0x52)
        case .object(let type, _):
            throw .unwritable(path: path, detail: "TorchScript object \(type) (DLKit writes state_dicts, not modules)")
        }
    }

    private mutating func int(_ i: Int) {
        if i >= 0 && i < 256 {
            bytes += [0x4B, UInt8(i)]
        } else if i >= 0 && i < 65536 {
            bytes += [0x4D, UInt8(i & 0xFF), UInt8(i >> 8)]
        } else if let v = Int32(exactly: i) {
            bytes.append(0x4A)
            withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
        } else {
            // LONG1: the shortest little-endian two's complement form.
            var le: [UInt8] = []
            withUnsafeBytes(of: Int64(i).littleEndian) { le = Array($0) }
            while le.count > 1 {
                let top = le[le.count - 1], next = le[le.count - 2]
                if (top == 0 && next & 0x80 == 0) || (top == 0xFF && next & 0x80 != 0) { le.removeLast() } else { break }
            }
            bytes += [0x8A, UInt8(le.count)] + le
        }
    }

    private mutating func string(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)
        withUnsafeBytes(of: UInt32(u.count).littleEndian) { bytes += $0 }
        bytes += u
    }

    /// GLOBAL `module name`, memoized so each global is spelled once.
    private mutating func global(_ module: String, _ name: String) {
        let key = "\(module)\n\(name)"
        if let i = memo[key] {
            memoGet(i)
            return
        }
        bytes.append(0x63)
        bytes += Array("\(module)\n\(name)\n".utf8)
        let i = memo.count
        memo[key] = i
        if i < 256 { bytes += [0x71, UInt8(i)] } else {
            bytes.append(0x72)
            withUnsafeBytes(of: UInt32(i).littleEndian) { bytes += $0 }
        }
    }

    private mutating func memoGet(_ i: Int) {
        if i < 256 { bytes += [0x68, UInt8(i)] } else {
            bytes.append(0x6A)
            withUnsafeBytes(of: UInt32(i).littleEndian) { bytes += $0 }
        }
    }

    private mutating func tensor(_ t: Tensor) throws(TorchError) {
        guard t.dtype != .string else { throw .unwritable(path: path, detail: "string tensors have no PyTorch form") }
        guard t.dtype.bitWidth >= 8 else { throw .unwritable(path: path, detail: "\(t.dtype) tensors have no PyTorch form DLKit writes") }
        let key = String(storages.count)
        storages.append(t)
        let typed = TorchScalarType.storageClass(for: t.dtype)
        global("torch._utils", typed == nil ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2")
        bytes.append(0x28)  // MARK: the rebuild arguments
        bytes.append(0x28)  // MARK: the persistent id
        string("storage")
        if let typed { global("torch", typed) } else { global("torch.storage", "UntypedStorage") }
        string(key)
        string("cpu")
        int(typed == nil ? t.byteCount : t.elementCount)
        bytes += [0x74, 0x51]  // TUPLE, BINPERSID
        int(0)
        var stride = [Int](repeating: 1, count: t.rank)
        var s = 1
        for i in (0..<t.rank).reversed() { stride[i] = s; s *= max(t.shape[i], 1) }
        try put(.tuple(t.shape.map { .int($0) }))
        try put(.tuple(stride.map { .int($0) }))
        bytes.append(0x89)  // requires_grad False
        global("collections", "OrderedDict")
        bytes += [0x29, 0x52]  // OrderedDict(): backward hooks
        if typed == nil { global("torch", TorchScalarType.name(of: t.dtype)) }
        bytes += [0x74, 0x52]  // TUPLE, REDUCE
    }
}
