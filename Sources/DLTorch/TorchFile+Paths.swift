import DLTensor

extension TorchFile {
    /// One line of `outline()`: a value at a dotted path and its nesting depth.
    public struct OutlineEntry: Sendable {
        public let path: String
        /// The last path component (a dict key, attribute or list index).
        public let key: String
        public let depth: Int
        public let value: TorchValue
    }

    /// The value at dotted path `key` (`model`, `optimizer.state.0`); the whole object for nil or "".
    /// Keys may contain dots themselves (`fc1.weight`): at each level the longest matching key wins.
    /// - Throws: `.keyNotFound` listing the top-level keys.
    public func value(at key: String?) throws(TorchError) -> TorchValue {
        guard let key, !key.isEmpty else { return root }
        guard let v = Self.lookup(root, key) else {
            throw .keyNotFound(path: path, key: key, available: Self.members(root).map(\.0))
        }
        return v
    }

    /// The tensors under `key` as dotted names, in file order; TorchScript modules give only their
    /// parameters and buffers, named as `state_dict()` names them.
    public func tensorRefs(key: String? = nil) throws(TorchError) -> [(name: String, ref: TorchTensorRef)] {
        var out: [(name: String, ref: TorchTensorRef)] = []
        flatten(try value(at: key), prefix: "", into: &out, depth: 0)
        return out
    }

    /// The tensors under `key`, read (see `tensor(_:name:)`), by dotted name.
    /// - Throws: `.notAStateDict` when there are none, and any error of reading a tensor.
    public func stateDict(key: String? = nil) throws(TorchError) -> NamedTensors {
        let refs = try tensorRefs(key: key)
        if refs.isEmpty {
            let v = try value(at: key)
            throw .notAStateDict(path: path, detail: "\(key.map { "'\($0)'" } ?? "the file") holds \(v.kindDescription) with no tensors")
        }
        var out = NamedTensors()
        for (name, ref) in refs { out[name] = try tensor(ref, name: name) }
        return out
    }

    /// Every value in the file with its dotted path, depth first, for listings (`dlconvert inspect`).
    public func outline(key: String? = nil) throws(TorchError) -> [OutlineEntry] {
        var out: [OutlineEntry] = []
        func walk(_ v: TorchValue, _ prefix: String, _ depth: Int) {
            guard depth < 64 else { return }
            for (k, child) in Self.members(v) {
                let p = prefix.isEmpty ? k : "\(prefix).\(k)"
                out.append(OutlineEntry(path: p, key: k, depth: depth, value: child))
                walk(child, p, depth + 1)
            }
        }
        walk(try value(at: key), key ?? "", 0)
        return out
    }

    /// The named members of a container: dict entries with simple keys, object attributes,
    /// list and tuple items by index.
    static func members(_ v: TorchValue) -> [(String, TorchValue)] {
        switch v {
        case .dict(let d), .object(_, let d): return d.compactMap { e in e.key.keyComponent.map { ($0, e.value) } }
        case .list(let a), .tuple(let a): return a.enumerated().map { (String($0.offset), $0.element) }
        default: return []
        }
    }

    static func lookup(_ v: TorchValue, _ path: String) -> TorchValue? {
        var best: (Int, TorchValue)?
        for (k, child) in members(v) {
            if path == k { return child }
            if path.hasPrefix(k + "."), k.count > (best?.0 ?? -1) {
                let rest = String(path.dropFirst(k.count + 1))
                if let found = lookup(child, rest) { best = (k.count, found) }
            }
        }
        return best?.1
    }

    private func flatten(_ v: TorchValue, prefix: String, into out: inout [(name: String, ref: TorchTensorRef)], depth: Int) {
        guard depth < Unpickler.maxDepth else { return }
        func join(_ k: String) -> String { prefix.isEmpty ? k : "\(prefix).\(k)" }
        switch v {
        case .tensor(let t):
            out.append((prefix, t))
        case .object(let type, let attributes):
            guard let cls = scriptClasses[type] else { fallthrough }
            // As Module.state_dict: parameters, then buffers, then submodules in attribute order.
            let named = Self.members(v)
            for p in cls.parameters + cls.buffers {
                if let (_, value) = named.first(where: { $0.0 == p }), case .tensor(let t) = value { out.append((join(p), t)) }
            }
            _ = attributes
            for (k, child) in named { if case .object = child { flatten(child, prefix: join(k), into: &out, depth: depth + 1) } }
        default:
            for (k, child) in Self.members(v) { flatten(child, prefix: join(k), into: &out, depth: depth + 1) }
        }
    }
}
