import DLSupport
import DLTensor

/// BYTES tensors (Open Inference Protocol v2): in JSON, strings (flat or nested as the shape); in
/// binary tensor data, each element as a 4-byte little-endian length and that many bytes. Elements
/// must be UTF-8 text: DLKit's string tensors hold `String`s.
extension TensorDataDecoder {
    /// Decodes the JSON `data` at `range` of `line` (already checked to be well-formed) as a BYTES tensor.
    static func decodeStrings(line: UnsafeRawBufferPointer, range: Range<Int>, shape: [Int], count: Int, label: String) throws(ServeError) -> Tensor {
        let value: JSON
        do { value = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: line[range])) } catch {
            throw .badRequest("\(label): data is not valid JSON text (\(error))")
        }
        var strings: [String] = []  // (no reserving by `count`: the shape is the request's word, the data may be short)
        // Flat: one array of `count` strings. Nested: arrays exactly as the shape. Rank 0: a bare string.
        if case .array(let items) = value, items.count == count, items.allSatisfy({ $0.stringValue != nil }) {
            strings = items.compactMap(\.stringValue)
        } else {
            try nestedStrings(value, shape: shape[...], into: &strings, label: label)
        }
        guard strings.count == count else {
            throw .badRequest("\(label) has \(strings.count) strings in data, but shape \(shape) holds \(count)")
        }
        return Tensor(shape: shape, strings: strings)
    }

    private static func nestedStrings(_ value: JSON, shape: ArraySlice<Int>, into out: inout [String], label: String) throws(ServeError) {
        guard let n = shape.first else {
            guard case .string(let s) = value else {
                throw .badRequest("\(label) has \(value.kindDescription) in data where a BYTES element (a string) belongs")
            }
            out.append(s)
            return
        }
        guard case .array(let items) = value, items.count == n else {
            throw .badRequest("\(label): data does not match shape \(Array(shape)) (expected \(n) items at this level, or one flat array of strings)")
        }
        for item in items { try nestedStrings(item, shape: shape.dropFirst(), into: &out, label: label) }
    }

    /// Decodes binary tensor data of a BYTES tensor: `count` length-prefixed elements filling `bytes` exactly.
    static func decodeBinaryStrings(_ bytes: UnsafeRawBufferPointer, shape: [Int], count: Int, label: String) throws(ServeError) -> Tensor {
        var strings: [String] = []
        strings.reserveCapacity(min(count, bytes.count / 4))
        var at = 0
        for i in 0..<count {
            guard bytes.count - at >= 4 else {
                throw .badRequest("\(label): binary data ends at byte \(at), before the length of element \(i) of \(count)")
            }
            let n = Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian)
            at += 4
            guard n <= bytes.count - at else {
                throw .badRequest("\(label): element \(i) declares \(n) bytes at byte \(at), only \(bytes.count - at) follow")
            }
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]), as: UTF8.self) else {
                throw .badRequest("\(label): element \(i) is not UTF-8 text")
            }
            strings.append(s)
            at += n
        }
        guard at == bytes.count else {
            throw .badRequest("\(label): \(count) elements end at byte \(at), but binary_data_size is \(bytes.count)")
        }
        return Tensor(shape: shape, strings: strings)
    }
}
