/// What the allowed globals do when a pickle calls, instantiates or builds them. Each rule only
/// rearranges data; none runs anything from the file.
extension Unpickler {
    func global(module rawModule: String, name: String) throws(TorchError) -> PickleObject {
        // Protocol-2 pickles written by Python 3 use Python 2 module names; map them back as
        // Python's unpickler does, so errors name what the user's code called.
        let module = Self.python3Modules[rawModule] ?? rawModule
        guard let g = PickleGlobal.resolve(module: module, name: name, torchScript: torchScript) else {
            throw TorchError.forbiddenGlobal(path: path, entry: entry, offset: opStart(), name: "\(module).\(name)")
        }
        if case .dtype(let t) = g { return .value(.dtype(t)) }
        if case .qscheme(let q) = g { return .value(.string("torch.\(q)")) }
        return .global(g, name: "\(module).\(name)")
    }

    static let python3Modules: [String: String] = [
        "__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins", "cPickle": "pickle",
        "commands": "subprocess", "UserDict": "collections", "urllib2": "urllib.request",
    ]

    /// A persistent id: `('storage', storage_class, key, location, numel[, view_metadata])`.
    func persistent(_ pid: PickleObject) throws(TorchError) -> PickleObject {
        guard case .tuple(let t) = pid, t.count >= 5, (try? string(t[0])) == "storage" else {
            throw fail("a persistent id must be a ('storage', ...) tuple; got \(pid.kindDescription)")
        }
        guard case .global(.storageClass(let cls), _) = t[1] else {
            throw fail("a storage's type is \(t[1].kindDescription), not a storage class")
        }
        var scalar: TorchScalarType? = nil
        if cls != "UntypedStorage" {
            guard let s = TorchScalarType(storageClass: cls) else {
                throw fail("storage class '\(cls)' does not name an element type")
            }
            scalar = s
        }
        let key: String
        switch t[2] {
        case .value(.int(let i)): key = String(i)
        default: key = try string(t[2])
        }
        let location = (try? string(t[3])) ?? "cpu"
        let count: Int
        switch t[4] {
        case .value(.int(let i)) where i >= 0: count = i
        case .value(.none): count = -1
        default: throw fail("storage '\(key)' has a size of \(t[4].kindDescription)")
        }
        // Legacy view_metadata `(view_key, offset, count)`: this reference is a view of the root
        // storage `key` (torch <= 0.4 saved storage slices so).
        var view: TorchStorageRef.LegacyView? = nil
        if t.count >= 6, case .tuple(let v) = t[5] {
            guard v.count == 3, case .value(.int(let off)) = v[1], case .value(.int(let n)) = v[2], off >= 0, n >= 0 else {
                throw fail("storage '\(key)' has a view of \(t[5].kindDescription), not (key, offset, count)")
            }
            view = .init(key: try string(v[0]), offset: off, count: n)
        }
        return .storage(TorchStorageRef(key: key, scalarType: scalar, declaredCount: count, location: location, view: view))
    }

    func call(_ f: PickleObject, _ a: [PickleObject]) throws(TorchError) -> PickleObject {
        guard case .global(let g, let name) = f else { throw fail("REDUCE calls \(f.kindDescription), which is not a function") }
        switch g {
        case .orderedDict, .counter:
            let d = PickleDict()
            if let first = a.first {
                let pairs: [PickleObject]
                switch first {
                case .list(let l): pairs = l.items
                case .tuple(let t): pairs = t
                case .dict(let other): return .dict(copy(other))
                default: throw fail("\(name) of \(first.kindDescription)")
                }
                // Python 3 pickles (key, value) tuples; Python 2.7's OrderedDict.__reduce__ gave
                // [key, value] lists.
                for p in pairs {
                    switch p {
                    case .tuple(let kv) where kv.count == 2: d.set(kv[0], kv[1])
                    case .list(let kv) where kv.items.count == 2: d.set(kv.items[0], kv.items[1])
                    default: throw fail("\(name) item is \(p.kindDescription), not a (key, value) pair")
                    }
                }
            }
            return .dict(d)
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            return .value(.tensor(try tensor(g, a)))
        case .rebuildParameter, .rebuildParameterWithState:
            guard a.count >= 2, case .value(.tensor(var t)) = a[0] else { throw fail("\(name) without a tensor") }
            t.isParameter = true
            return .value(.tensor(t))
        case .rebuildFromTypeV2:
            guard a.count == 4, case .tuple(let args) = a[2] else { throw fail("\(name) with malformed arguments") }
            let made = try call(a[0], args)
            if case .global(.tensorClass(true), _) = a[1], case .value(.tensor(var t)) = made {
                t.isParameter = true
                return .value(.tensor(t))
            }
            return made
        case .unsupportedRebuild(let n):
            throw fail("\(n) builds a quantized, sparse, nested, meta or subclass tensor, which DLKit does not read")
        case .size:
            guard a.count == 1 else { throw fail("torch.Size takes one argument") }
            switch a[0] {
            case .tuple(let t): return .tuple(t)
            case .list(let l): return .tuple(l.items)
            default: throw fail("torch.Size of \(a[0].kindDescription)")
            }
        case .device:
            guard let first = a.first else { throw fail("torch.device without arguments") }
            var s = try string(first)
            if a.count > 1, case .value(.int(let i)) = a[1] { s += ":\(i)" }
            return .value(.device(s))
        case .getLayout:
            guard a.count == 1 else { throw fail("_get_layout takes one argument") }
            return .value(.string(try string(a[0])))
        case .codecsEncode:
            guard let first = a.first else { throw fail("_codecs.encode without arguments") }
            let s = try string(first)
            let enc = a.count > 1 ? (try string(a[1])).lowercased() : "utf-8"
            if enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1" {
                var out: [UInt8] = []
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw fail("_codecs.encode: a character above U+00FF in latin1") }
                    out.append(UInt8(u.value))
                }
                return .value(.bytes(out))
            }
            return .value(.bytes(Array(s.utf8)))
        case .bytearray:
            guard let first = a.first else { return .value(.bytes([])) }
            if case .value(.bytes(let b)) = first { return .value(.bytes(b)) }
            throw fail("bytearray of \(first.kindDescription)")
        case .set:
            guard let first = a.first else { return .set(PickleList()) }
            switch first {
            case .list(let l), .set(let l): return .set(PickleList(l.items))
            case .tuple(let t): return .set(PickleList(t))
            default: throw fail("set of \(first.kindDescription)")
            }
        case .complex:
            func num(_ o: PickleObject) throws(TorchError) -> Double {
                switch o {
                case .value(.float(let d)): return d
                case .value(.int(let i)): return Double(i)
                default: throw fail("complex of \(o.kindDescription)")
                }
            }
            return .value(.complex(a.count > 0 ? try num(a[0]) : 0, a.count > 1 ? try num(a[1]) : 0))
        case .jitHelper(let h):
            guard let first = a.first else { throw fail("\(name) without arguments") }
            if h == "build_tensor_from_id" { throw fail("\(name) refers to tensors outside the pickle, which DLKit does not read") }
            if h == "restore_type_tag" { return first }
            return first
        case .tensorClass(let isParameter) where a.count == 1:
            // torch 0.3's Variable/Parameter.__reduce_ex__ at protocol 2: `Parameter(data)`, then
            // BUILD with its (requires_grad, volatile, hooks) state.
            guard case .value(.tensor(var t)) = a[0] else { throw fail("\(name) of \(a[0].kindDescription), not a tensor") }
            t.isParameter = isParameter
            return .value(.tensor(t))
        case .dtype, .qscheme, .storageClass, .tensorClass, .scriptClass:
            throw fail("REDUCE calls \(name), which a weights file never calls")
        }
    }

    func new(_ cls: PickleObject, _ a: [PickleObject]) throws(TorchError) -> PickleObject {
        guard case .global(let g, let name) = cls else { throw fail("NEWOBJ on \(cls.kindDescription), which is not a class") }
        switch g {
        case .orderedDict, .counter: return .dict(PickleDict())
        case .set: return .set(PickleList())
        case .scriptClass(let type): return .object(PickleScriptObject(type: type))
        case .tensorClass(let isParameter):
            guard let first = a.first, case .value(.tensor(var t)) = first else {
                throw fail("\(name).__new__ without a tensor")
            }
            t.isParameter = isParameter
            return .value(.tensor(t))
        default: throw fail("NEWOBJ on \(name), which a weights file never instantiates")
        }
    }

    func build(_ target: PickleObject, _ state: PickleObject) throws(TorchError) {
        switch target {
        case .dict:
            // OrderedDict state: instance attributes such as `_metadata`; they do not change the items.
            return
        case .value(.tensor):
            // Tensor and Parameter state (hooks, attributes set on the tensor): nothing for the data.
            return
        case .object(let o):
            switch state {
            case .dict(let d):
                for (k, v) in d.items { o.attributes.set(k, v) }
            default:
                o.attributes.set(.value(.string("__state__")), state)
            }
        default:
            throw fail("BUILD on \(target.kindDescription), which a weights file never builds")
        }
    }

    // MARK: tensors

    private func tensor(_ g: PickleGlobal, _ a: [PickleObject]) throws(TorchError) -> TorchTensorRef {
        let need = g == .rebuildTensor ? 4 : g == .rebuildTensorV2 ? 6 : 7
        guard a.count >= need else { throw fail("a tensor rebuild with \(a.count) arguments; it takes \(need)") }
        guard case .storage(let storage) = a[0] else { throw fail("a tensor's storage is \(a[0].kindDescription)") }
        guard case .value(.int(let offset)) = a[1], offset >= 0 else { throw fail("a tensor's storage offset is \(a[1].kindDescription)") }
        let size = try ints(a[2], "size")
        let stride = try ints(a[3], "stride")
        guard size.count == stride.count, size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
            throw fail("a tensor's size \(size) and stride \(stride) do not match")
        }
        var requiresGrad = false
        if g != .rebuildTensor, case .value(.bool(let b)) = a[4] { requiresGrad = b }
        var scalar = storage.scalarType
        if g == .rebuildTensorV3 {
            guard case .value(.dtype(let d)) = a[6] else { throw fail("_rebuild_tensor_v3's dtype is \(a[6].kindDescription)") }
            scalar = d
        }
        guard let scalar else { throw fail("a tensor over an untyped storage without a dtype") }
        return TorchTensorRef(storage: storage, scalarType: scalar, storageOffset: offset, size: size, stride: stride,
                              requiresGrad: requiresGrad, isParameter: false)
    }

    private func ints(_ o: PickleObject, _ what: String) throws(TorchError) -> [Int] {
        let items: [PickleObject]
        switch o {
        case .tuple(let t): items = t
        case .list(let l): items = l.items
        default: throw fail("a tensor's \(what) is \(o.kindDescription), not a tuple")
        }
        var out: [Int] = []
        for i in items {
            guard case .value(.int(let v)) = i else { throw fail("a tensor's \(what) holds \(i.kindDescription)") }
            out.append(v)
        }
        return out
    }

    private func copy(_ d: PickleDict) -> PickleDict {
        let c = PickleDict()
        for (k, v) in d.items { c.set(k, v) }
        return c
    }

    // MARK: conversion

    /// Turns the stack's reference graph into values, bounded in depth and total size.
    func convert(_ o: PickleObject, depth: Int, budget: inout Int) throws(TorchError) -> TorchValue {
        guard depth < Self.maxDepth else {
            throw TorchError.limitExceeded(path: path, entry: entry, offset: position, what: "values nest deeper than \(Self.maxDepth) levels")
        }
        budget -= 1
        guard budget >= 0 else {
            throw TorchError.limitExceeded(path: path, entry: entry, offset: position,
                                           what: "the pickle expands to far more values than its size allows (shared references)")
        }
        func all(_ items: [PickleObject], _ budget: inout Int) throws(TorchError) -> [TorchValue] {
            var out: [TorchValue] = []
            out.reserveCapacity(items.count)
            for i in items { out.append(try convert(i, depth: depth + 1, budget: &budget)) }
            return out
        }
        func entries(_ d: PickleDict, _ budget: inout Int) throws(TorchError) -> [TorchDictEntry] {
            var out: [TorchDictEntry] = []
            out.reserveCapacity(d.items.count)
            for (k, v) in d.items {
                out.append(TorchDictEntry(try convert(k, depth: depth + 1, budget: &budget), try convert(v, depth: depth + 1, budget: &budget)))
            }
            return out
        }
        switch o {
        case .value(let v): return v
        case .tuple(let t): return .tuple(try all(t, &budget))
        case .list(let l): return .list(try all(l.items, &budget))
        case .set(let l): return .set(try all(l.items, &budget))
        case .dict(let d): return .dict(try entries(d, &budget))
        case .object(let ob): return .object(type: ob.type, attributes: try entries(ob.attributes, &budget))
        case .global(_, let name): return .string(name)
        case .storage(let s): return .string("storage '\(s.key)'")
        }
    }

    private func string(_ o: PickleObject) throws(TorchError) -> String {
        switch o {
        case .value(.string(let s)): return s
        case .value(.bytes(let b)): return String(decoding: b, as: UTF8.self)
        default: throw fail("expected a string, got \(o.kindDescription)")
        }
    }

    private func fail(_ detail: String) -> TorchError {
        .invalidPickle(path: path, entry: entry, offset: opStart(), detail: detail)
    }
}
