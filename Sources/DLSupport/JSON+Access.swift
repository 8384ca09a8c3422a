/// Typed reads of parsed JSON values (nil when the value is of another kind).
extension JSON {
    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    package var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    package var intValue: Int? {
        if case .number(let n) = self { return Int(n) ?? Double(n).flatMap { $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil } }
        return nil
    }

    package var doubleValue: Double? {
        if case .number(let n) = self { return Double(n) }
        return nil
    }

    package var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}
