/// A strict JSON (RFC 8259) parser for input DLKit does not trust: safetensors headers, checkpoint
/// metadata, and `dlserve` requests.
///
/// Foundation's `JSONSerialization` keeps only one of two equal keys and forgets member order, so
/// a file naming a tensor twice would load silently and `names` could not follow the file. This
/// parser keeps every object member in order, duplicates included, with the byte offset where it
/// starts; the caller decides what a repeated key means. It treats its input as hostile: nesting
/// is limited to `maxDepth`, strings must be valid UTF-8 without raw control characters, `\u`
/// escapes must pair their surrogates, and nothing but whitespace may follow the top-level value.
/// Its size is bounded by the caller (a header length cap, a request line limit).
package enum JSON: Sendable, Equatable {
    case object([JSONMember])
    case array([JSON])
    case string(String)
    /// The literal text of a number, already checked against the JSON grammar.
    case number(String)
    case bool(Bool)
    case null

    /// A short name of the value's kind for error messages ("an object", "a string", ...).
    package var kindDescription: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

package struct JSONMember: Sendable, Equatable {
    package let key: String
    package let value: JSON
    /// Offset of the key's opening quote within the parsed bytes.
    package let offset: Int

    /// Members are equal when key and value are; where they stood in the text does not matter.
    package static func == (a: JSONMember, b: JSONMember) -> Bool { a.key == b.key && a.value == b.value }

    package init(key: String, value: JSON, offset: Int = 0) {
        self.key = key
        self.value = value
        self.offset = offset
    }
}

package struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    /// Offset within the parsed bytes where the problem was found.
    package let offset: Int
    package let message: String

    package var description: String { "\(message) at byte \(offset)" }
}

package struct JSONParser {
    /// Deep enough for any header or request, shallow enough for the stack.
    package static let maxDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private var pos = 0
    private var depth = 0

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Parses `bytes` as one JSON value surrounded by optional whitespace.
    package static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> JSON {
        var p = JSONParser(bytes)
        p.skipWhitespace()
        let v = try p.parseValue()
        p.skipWhitespace()
        if p.pos < bytes.count { throw p.fail("unexpected \(p.describe(p.bytes[p.pos])) after the end of the JSON value") }
        return v
    }

    /// Parses the UTF-8 of `text` (metadata values, config strings).
    package static func parse(_ text: String) throws(JSONSyntaxError) -> JSON {
        var text = text
        var result: Result<JSON, JSONSyntaxError> = .success(.null)
        text.withUTF8 { b in
            do throws(JSONSyntaxError) { result = .success(try parse(UnsafeRawBufferPointer(b))) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// Parses `bytes` (a file's entry, a configuration read whole).
    package static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSON {
        var result: Result<JSON, JSONSyntaxError> = .success(.null)
        bytes.withUnsafeBytes { b in
            do throws(JSONSyntaxError) { result = .success(try parse(b)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    // MARK: - Values

    private mutating func parseValue() throws(JSONSyntaxError) -> JSON {
        guard pos < bytes.count else { throw fail("unexpected end of the input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case let b: throw fail("unexpected \(describe(b)), expected a value")
        }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSON {
        try enter()
        pos += 1  // {
        var members: [JSONMember] = []
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            pos += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek(UInt8(ascii: "\"")) else { throw fail(expecting: "a member name in quotes") }
            let keyOffset = pos
            let key = try parseString()
            skipWhitespace()
            guard peek(UInt8(ascii: ":")) else { throw fail(expecting: "':' after the member name") }
            pos += 1
            skipWhitespace()
            let value = try parseValue()
            members.append(JSONMember(key: key, value: value, offset: keyOffset))
            skipWhitespace()
            if peek(UInt8(ascii: ",")) { pos += 1; continue }
            if peek(UInt8(ascii: "}")) { pos += 1; break }
            throw fail(expecting: "',' or '}' in an object")
        }
        depth -= 1
        return .object(members)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSON {
        try enter()
        pos += 1  // [
        var items: [JSON] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            pos += 1
            depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            if peek(UInt8(ascii: ",")) { pos += 1; continue }
            if peek(UInt8(ascii: "]")) { pos += 1; break }
            throw fail(expecting: "',' or ']' in an array")
        }
        depth -= 1
        return .array(items)
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maxDepth { throw fail("values nest deeper than \(Self.maxDepth) levels") }
    }

    // MARK: - Strings

    /// Parses a string starting at its opening quote; leaves `pos` after the closing quote.
    private mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = pos
        pos += 1  // opening quote
        let contentStart = pos
        // Fast path: no escapes, the bytes are the string.
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                let s = try decodeUTF8(contentStart..<pos, stringStart: start)
                pos += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("raw control character \(describe(b)) in a string; it must be escaped") }
            pos += 1
        }
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[contentStart..<pos]))
        while pos < bytes.count {
            let b = bytes[pos]
            switch b {
            case UInt8(ascii: "\""):
                let s = String(decoding: out, as: UTF8.self)
                guard s.utf8.elementsEqual(out) else {
                    throw JSONSyntaxError(offset: start, message: "a string is not valid UTF-8")
                }
                pos += 1
                return s
            case UInt8(ascii: "\\"):
                try parseEscape(into: &out)
            case 0..<0x20:
                throw fail("raw control character \(describe(b)) in a string; it must be escaped")
            default:
                out.append(b)
                pos += 1
            }
        }
        throw JSONSyntaxError(offset: start, message: "a string is not closed before the end of the input")
    }

    private func decodeUTF8(_ range: Range<Int>, stringStart: Int) throws(JSONSyntaxError) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[range])
        let s = String(decoding: raw, as: UTF8.self)
        // Invalid sequences decode to U+FFFD, so the round trip differs exactly when the input is bad.
        guard s.utf8.elementsEqual(raw) else {
            throw JSONSyntaxError(offset: stringStart, message: "a string is not valid UTF-8")
        }
        return s
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONSyntaxError) {
        pos += 1  // backslash
        guard pos < bytes.count else { throw fail("unexpected end of the input in an escape") }
        let c = bytes[pos]
        pos += 1
        switch c {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let escapeStart = pos - 2
            let unit = try parseHex4()
            var scalarValue = UInt32(unit)
            if (0xD800...0xDBFF).contains(unit) {
                guard pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                    throw JSONSyntaxError(offset: escapeStart, message: "a \\u escape starts a surrogate pair that is not completed")
                }
                pos += 2
                let low = try parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw JSONSyntaxError(offset: escapeStart, message: "a \\u escape starts a surrogate pair that is not completed")
                }
                scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONSyntaxError(offset: escapeStart, message: "a \\u escape is a lone low surrogate")
            }
            guard let scalar = Unicode.Scalar(scalarValue) else {
                throw JSONSyntaxError(offset: escapeStart, message: "a \\u escape is not a Unicode scalar")
            }
            out.append(contentsOf: String(Character(scalar)).utf8)
        default:
            pos -= 1
            throw fail("invalid escape in a string: a backslash followed by \(describe(c))")
        }
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt16 {
        guard pos + 4 <= bytes.count else { throw fail("unexpected end of the input in a \\u escape") }
        var v: UInt16 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw fail("\\u must be followed by four hex digits")
            }
            v = v << 4 | UInt16(d)
            pos += 1
        }
        return v
    }

    // MARK: - Numbers and literals

    /// Checks `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` and returns the text.
    private mutating func parseNumber() throws(JSONSyntaxError) -> String {
        let start = pos
        let (end, expected) = JSONNumberGrammar.scan(bytes, from: pos)
        pos = end
        if let expected { throw fail(expecting: expected) }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }

    private mutating func expectLiteral(_ word: StaticString) throws(JSONSyntaxError) {
        guard JSONText.hasLiteral(word, in: bytes, at: pos) else {
            throw fail("unexpected \(describe(bytes[pos])), expected a value")
        }
        pos += word.utf8CodeUnitCount
    }

    // MARK: - Helpers

    private mutating func skipWhitespace() { pos = JSONText.skipWhitespace(bytes, from: pos) }

    private func peek(_ b: UInt8) -> Bool { pos < bytes.count && bytes[pos] == b }

    private func fail(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: pos, message: message) }

    private func fail(expecting what: String) -> JSONSyntaxError {
        if pos >= bytes.count { return fail("unexpected end of the input, expected \(what)") }
        return fail("unexpected \(describe(bytes[pos])), expected \(what)")
    }

    private func describe(_ b: UInt8) -> String { JSONText.describe(b) }
}

/// What a JSON number means as a size or offset.
package enum JSONInteger: Sendable, Equatable {
    case value(Int)
    case negative
    case notInteger
    case tooLarge

    package init(literal s: String) {
        if let v = Int(s) {
            self = v < 0 ? .negative : .value(v)
        } else if s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            self = .notInteger
        } else {
            self = s.hasPrefix("-") ? .negative : .tooLarge
        }
    }
}
