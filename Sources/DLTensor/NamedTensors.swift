/// Tensors by name, in insertion order: what weight files, state dicts and graph initializers hold.
public struct NamedTensors: Sendable, Sequence {
    public private(set) var names: [String] = []
    private var byName: [String: Tensor] = [:]

    public init() {}

    public init(_ pairs: [(String, Tensor)]) {
        for (n, t) in pairs { self[n] = t }
    }

    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }

    /// Reads a tensor; setting one keeps its first position, setting nil removes it.
    public subscript(name: String) -> Tensor? {
        get { byName[name] }
        set {
            if let newValue {
                if byName.updateValue(newValue, forKey: name) == nil { names.append(name) }
            } else if byName.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    public func contains(_ name: String) -> Bool { byName[name] != nil }

    public func makeIterator() -> AnyIterator<(name: String, tensor: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < names.count, let t = byName[names[i]] else { return nil }
            defer { i += 1 }
            return (names[i], t)
        }
    }
}
