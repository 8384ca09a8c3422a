/// Bounds the nesting of an ONNX model's messages before protobuf-c sees the bytes.
///
/// protobuf-c unpacks nested messages by recursion without a depth limit, so a few megabytes of
/// `graph { node { attribute { g { node { ... } } } } }` overflow the stack before our own
/// subgraph limit (`ReadContext.maxDepth`) is reached. This walk follows only the fields through
/// which ONNX messages can recurse (graph attributes, functions, training graphs, nested types),
/// iteratively, and reports the deepest level; every other field is skipped as opaque bytes, so
/// the cost is one pass over the structure, not over the weights.
enum ProtoNesting {
    /// More than the reader allows anyway: 64 subgraph levels of graph/node/attribute, plus
    /// 16 levels of nested types, plus the model around them.
    static let maxDepth = 64 * 3 + 16 * 2 + 16

    /// Message kinds on the recursion paths.
    private enum Kind { case model, graph, node, attribute, function, training, valueInfo, type, typeChild }

    /// The kind of submessage field `field` holds in a message of kind `kind`, when it is one
    /// that can lead back into recursion.
    private static func child(_ kind: Kind, _ field: Int) -> Kind? {
        switch (kind, field) {
        case (.model, 7): .graph
        case (.model, 20): .training
        case (.model, 25): .function
        case (.graph, 1): .node
        case (.graph, 11), (.graph, 12), (.graph, 13): .valueInfo
        case (.node, 5): .attribute
        case (.attribute, 6), (.attribute, 11): .graph
        case (.attribute, 14), (.attribute, 15): .type
        case (.function, 7): .node
        case (.function, 11): .attribute
        case (.training, 1), (.training, 2): .graph
        case (.valueInfo, 2): .type
        case (.type, 4), (.type, 5), (.type, 9): .typeChild   // sequence, map, optional
        case (.typeChild, 1), (.typeChild, 2): .type           // their elem_type / value_type
        default: nil
        }
    }

    /// Returns nil when the model nests at most `maxDepth` deep, else the byte offset of the
    /// first message past the limit. Malformed wire data is left for protobuf-c to report.
    static func tooDeep(_ bytes: UnsafeRawBufferPointer, limit: Int = maxDepth) -> Int? {
        // Explicit stack of (kind, end offset) for the messages being walked.
        var stack: [(kind: Kind, end: Int)] = [(.model, bytes.count)]
        var r = WireReader(bytes: bytes)
        while let top = stack.last {
            if r.offset >= top.end {
                stack.removeLast()
                continue
            }
            guard let (field, type) = r.key(), r.offset <= top.end else { return nil }
            if type == 2 {
                guard let n = r.varint(), r.offset <= top.end, n <= UInt64(top.end - r.offset) else { return nil }
                let start = r.offset
                if let k = child(top.kind, field) {
                    guard stack.count < limit else { return start }
                    stack.append((k, start + Int(n)))
                } else {
                    r.offset = start + Int(n)
                }
            } else if !r.skip(type) || r.offset > top.end {
                return nil
            }
        }
        return nil
    }
}
