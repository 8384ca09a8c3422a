/// A value on the unpickler's stack. Lists, dicts, sets and script objects are references
/// because pickles fill them after memoizing them (APPEND, SETITEMS, BUILD on a memo entry).
indirect enum PickleObject {
    case value(TorchValue)
    case tuple([PickleObject])
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleList)
    case object(PickleScriptObject)
    case global(PickleGlobal, name: String)
    case storage(TorchStorageRef)

    var kindDescription: String {
        switch self {
        case .value(let v): v.kindDescription
        case .tuple(let t): "tuple (\(t.count))"
        case .list: "list"
        case .dict: "dict"
        case .set: "set"
        case .object(let o): "object \(o.type)"
        case .global(_, let n): n
        case .storage(let s): "storage '\(s.key)'"
        }
    }
}

final class PickleList {
    var items: [PickleObject] = []
    init(_ items: [PickleObject] = []) { self.items = items }
}

final class PickleDict {
    var items: [(key: PickleObject, value: PickleObject)] = []
    /// Position of each key that has a simple identity (string, int, bool, None), so that a
    /// repeated key replaces its value as in Python.
    private var positions: [String: Int] = [:]

    func set(_ key: PickleObject, _ value: PickleObject) {
        if let id = Self.identity(key) {
            if let i = positions[id] { items[i].value = value; return }
            positions[id] = items.count
        }
        items.append((key, value))
    }

    static func identity(_ key: PickleObject) -> String? {
        switch key {
        case .value(.string(let s)): "s" + s
        case .value(.int(let i)): "i\(i)"
        case .value(.bool(let b)): "i\(b ? 1 : 0)"
        case .value(.none): "n"
        case .value(.float(let f)) where f == f.rounded() && abs(f) < 1e15: "i\(Int(f))"
        case .value(.float(let f)): "f\(f)"
        default: nil
        }
    }
}

final class PickleScriptObject {
    let type: String
    var attributes = PickleDict()
    init(type: String) { self.type = type }
}
