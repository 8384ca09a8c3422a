/// Bounds the nesting of a SavedModel's messages before protobuf-c (which recurses without a
/// limit) sees the bytes. Only the fields through which the kept messages can recurse are
/// followed (attribute values holding function attributes holding attribute values, variables
/// holding variables); every other field is skipped as opaque bytes. Malformed wire data is left
/// for protobuf-c to report.
enum TFProtoNesting {
    static let maxDepth = 100

    private enum Kind {
        case savedModel, metaGraph, graph, library, function, node, attrEntry, attrValue, attrList, nameAttrList
        case objectGraph, savedObject, savedVariable
    }

    private static func child(_ kind: Kind, _ field: UInt64) -> Kind? {
        switch (kind, field) {
        case (.savedModel, 2): .metaGraph
        case (.metaGraph, 2): .graph
        case (.metaGraph, 7): .objectGraph
        case (.graph, 1), (.function, 3): .node
        case (.graph, 2): .library
        case (.library, 1): .function
        case (.function, 5), (.node, 5), (.nameAttrList, 2): .attrEntry
        case (.attrEntry, 2): .attrValue
        case (.attrValue, 1): .attrList
        case (.attrValue, 10), (.attrList, 9): .nameAttrList
        case (.objectGraph, 1): .savedObject
        case (.savedObject, 7), (.savedVariable, 8): .savedVariable
        default: nil
        }
    }

    /// nil when the bytes nest at most `limit` deep, else the offset of the first message past it.
    static func tooDeep(_ bytes: UnsafeRawBufferPointer, limit: Int = maxDepth) -> Int? {
        var stack: [(kind: Kind, end: Int)] = [(.savedModel, bytes.count)]
        var at = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                guard at < bytes.count else { return nil }
                let b = bytes[at]
                at += 1
                v |= UInt64(b & 0x7F) << UInt64(shift)
                if b & 0x80 == 0 { return v }
            }
            return nil
        }
        while let top = stack.last {
            if at >= top.end {
                stack.removeLast()
                continue
            }
            guard let key = varint() else { return nil }
            switch key & 7 {
            case 0: guard varint() != nil else { return nil }
            case 1: at += 8
            case 5: at += 4
            case 2:
                guard let n = varint(), n <= UInt64(top.end - min(at, top.end)) else { return nil }
                if let k = child(top.kind, key >> 3) {
                    guard stack.count < limit else { return at }
                    stack.append((k, at + Int(n)))
                } else {
                    at += Int(n)
                }
            default: return nil
            }
            if at > top.end { return nil }
        }
        return nil
    }
}
