import DLSupport
import DLTensor

/// One entry of a request's `inputs` as scanned: header fields parsed, `data` left as a byte range
/// of the line so the tensor decoder can read it straight into the tensor's buffer.
struct ScannedInput {
    var name: JSON?
    var datatype: JSON?
    var shape: JSON?
    var parameters: JSON?
    /// Byte range of the `data` value within the line (already checked to be well-formed JSON).
    var data: Range<Int>?
}

/// A request line after scanning: the id, the other top-level members, and the inputs.
struct ScannedRequest {
    var id: JSON = .null
    /// Top-level members other than `id` and `inputs` (`model_name`, `method`, `outputs`, ...).
    var members: [String: JSON] = [:]
    /// The `inputs` entries when `inputs` is an array of objects; nil when absent.
    var inputs: [ScannedInput]?
    /// Set when `inputs` is present but not an array of objects: what it was instead.
    var inputsProblem: String?
}

/// Reads a request line without building a JSON tree for the bulk of it.
///
/// Requests are JSON objects whose size is almost all in the `data` arrays of the inputs. Building
/// a `JSON` value per number (a `String` each) and converting afterwards costs several times more
/// than the model run for small models, so this scanner walks the object itself: every member but
/// `data` is handed to the strict `JSONParser` (same rules: UTF-8, escapes, duplicate keys kept),
/// while `data` values are only checked for well-formedness and depth and kept as a byte range.
/// `TensorDataDecoder` then reads them once, straight into the tensor.
///
/// Nesting is limited to `maxDepth` levels counted from the top-level object, so a hostile line
/// cannot exhaust the stack. The id is remembered as soon as it is read, so a request that fails
/// later can still be answered with it.
struct RequestScanner {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    private(set) var pos = 0
    /// The request's id once read (also when the scan fails afterwards).
    private(set) var id: JSON?

    init(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = JSONParser.maxDepth) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Scans one request.
    /// - Throws: `ServeError.badRequest` for text that is not JSON, nests too deep, or is not an
    ///   object; the message says what and at which byte.
    mutating func scan() throws(ServeError) -> ScannedRequest {
        skipWhitespace()
        guard peek(UInt8(ascii: "{")) else {
            // Tell "not JSON" from "JSON, but not an object".
            try skipValue(depth: 0)
            skipWhitespace()
            guard pos == bytes.count else { throw syntax("unexpected \(describe(bytes[pos])) after the end of the JSON value") }
            throw .badRequest("the request must be a JSON object")
        }
        var request = ScannedRequest()
        var seen: Set<String> = []
        try members(depth: 1) { (key, s) throws(ServeError) in
            guard seen.insert(key).inserted else { throw .badRequest("the request has the member \"\(key)\" twice") }
            switch key {
            case "id":
                let v = try s.value(depth: 1)
                s.id = v
                request.id = v
            case "inputs":
                if s.peek(UInt8(ascii: "[")) {
                    request.inputs = try s.inputs(problem: &request.inputsProblem)
                } else {
                    let v = try s.value(depth: 1)
                    request.inputsProblem = "\"inputs\" is \(v.kindDescription), not an array"
                }
            default:
                request.members[key] = try s.value(depth: 1)
            }
        }
        skipWhitespace()
        guard pos == bytes.count else { throw syntax("unexpected \(describe(bytes[pos])) after the end of the JSON value") }
        return request
    }

    // MARK: - Request structure

    /// Reads the `inputs` array; entries that are not objects are noted in `problem`.
    private mutating func inputs(problem: inout String?) throws(ServeError) -> [ScannedInput] {
        try enter(2)
        pos += 1  // [
        var list: [ScannedInput] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) { pos += 1; return list }
        while true {
            skipWhitespace()
            if peek(UInt8(ascii: "{")) {
                list.append(try input(index: list.count))
            } else {
                let v = try value(depth: 2)
                if problem == nil { problem = "inputs[\(list.count)] is \(v.kindDescription), not an object" }
                list.append(ScannedInput())
            }
            skipWhitespace()
            if peek(UInt8(ascii: ",")) { pos += 1; continue }
            if peek(UInt8(ascii: "]")) { pos += 1; break }
            throw syntax(expecting: "',' or ']' in an array")
        }
        return list
    }

    private mutating func input(index: Int) throws(ServeError) -> ScannedInput {
        var input = ScannedInput()
        var seen: Set<String> = []
        try members(depth: 3) { (key, s) throws(ServeError) in
            guard seen.insert(key).inserted else { throw .badRequest("inputs[\(index)] has the member \"\(key)\" twice") }
            switch key {
            case "data":
                let start = s.pos
                try s.skipData(depth: 3)
                input.data = start..<s.pos
            case "name": input.name = try s.value(depth: 3)
            case "datatype": input.datatype = try s.value(depth: 3)
            case "shape": input.shape = try s.value(depth: 3)
            case "parameters": input.parameters = try s.value(depth: 3)
            default: try s.skipValue(depth: 3)  // other protocol fields are not used
            }
        }
        return input
    }

    /// Walks the members of the object starting at `pos` (at depth `depth`, 1 for the request),
    /// calling `body` with each key while `pos` is at the member's value; `body` must consume it.
    private mutating func members(
        depth: Int, _ body: (String, inout RequestScanner) throws(ServeError) -> Void
    ) throws(ServeError) {
        try enter(depth)
        pos += 1  // {
        skipWhitespace()
        if peek(UInt8(ascii: "}")) { pos += 1; return }
        while true {
            skipWhitespace()
            guard peek(UInt8(ascii: "\"")) else { throw syntax(expecting: "a member name in quotes") }
            let key = try string()
            skipWhitespace()
            guard peek(UInt8(ascii: ":")) else { throw syntax(expecting: "':' after the member name") }
            pos += 1
            skipWhitespace()
            try body(key, &self)
            skipWhitespace()
            if peek(UInt8(ascii: ",")) { pos += 1; continue }
            if peek(UInt8(ascii: "}")) { pos += 1; break }
            throw syntax(expecting: "',' or '}' in an object")
        }
    }

    /// Parses the value at `pos` (the child of a container at `depth`) with the strict parser.
    private mutating func value(depth: Int) throws(ServeError) -> JSON {
        let start = pos
        try skipValue(depth: depth)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<pos])
        do { return try JSONParser.parse(slice) } catch {
            throw .badRequest("the request is not valid JSON: \(error.message) at byte \(start + error.offset)")
        }
    }

    /// Decodes the string at `pos` (a member name); plain ASCII-or-UTF-8 names without escapes
    /// take the fast path, the rest goes through the strict parser.
    private mutating func string() throws(ServeError) -> String {
        let start = pos
        var escaped = false
        try skipString(escaped: &escaped)
        if !escaped {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start + 1..<pos - 1])
            let s = String(decoding: raw, as: UTF8.self)
            guard s.utf8.elementsEqual(raw) else {
                throw .badRequest("the request is not valid JSON: a string is not valid UTF-8 at byte \(start)")
            }
            return s
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<pos])
        do {
            guard case .string(let s) = try JSONParser.parse(slice) else { throw syntax("expected a string") }
            return s
        } catch let e as JSONSyntaxError {
            throw .badRequest("the request is not valid JSON: \(e.message) at byte \(start + e.offset)")
        } catch let e as ServeError { throw e } catch {
            throw .badRequest("the request is not valid JSON at byte \(start)")
        }
    }

    // MARK: - Skipping (well-formedness and depth only)

    /// Moves past a `data` value matching brackets only (depth still limited): the tensor decoder
    /// checks every token and separator inside when it reads the value, so checking the number
    /// grammar here too would read the bulk of the request twice.
    mutating func skipData(depth: Int) throws(ServeError) {
        guard pos < bytes.count else { throw syntax("unexpected end of the input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "\""):
            var escaped = false
            try skipString(escaped: &escaped)
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            var level = 0
            while pos < bytes.count {
                // Numbers and separators make up almost all of it: jump 8 bytes at a time to
                // the next bracket or quote.
                while pos + 8 <= bytes.count, !Self.hasStructural(bytes.loadUnaligned(fromByteOffset: pos, as: UInt64.self)) {
                    pos += 8
                }
                // The jump may land exactly on the end of a line cut inside the value.
                guard pos < bytes.count else { break }
                switch bytes[pos] {
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    level += 1
                    try enter(depth + level)
                    pos += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    level -= 1
                    pos += 1
                    if level == 0 { return }
                case UInt8(ascii: "\""):
                    var escaped = false
                    try skipString(escaped: &escaped)
                default:
                    pos += 1
                }
            }
            throw syntax("unexpected end of the input inside \"data\"")
        default:
            // A bare scalar: up to the next separator.
            while pos < bytes.count {
                switch bytes[pos] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return
                default: pos += 1
                }
            }
        }
    }

    /// Moves past the value at `pos`, checking its grammar and that containers stay within
    /// `maxDepth` (`depth` is the depth of the container holding it). Strings are checked for
    /// raw control characters and escape syntax; their UTF-8 is checked when they are decoded.
    mutating func skipValue(depth: Int) throws(ServeError) {
        guard pos < bytes.count else { throw syntax("unexpected end of the input, expected a value") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            try enter(depth + 1)
            pos += 1
            skipWhitespace()
            if peek(UInt8(ascii: "}")) { pos += 1; return }
            while true {
                skipWhitespace()
                guard peek(UInt8(ascii: "\"")) else { throw syntax(expecting: "a member name in quotes") }
                var escaped = false
                try skipString(escaped: &escaped)
                skipWhitespace()
                guard peek(UInt8(ascii: ":")) else { throw syntax(expecting: "':' after the member name") }
                pos += 1
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek(UInt8(ascii: ",")) { pos += 1; continue }
                if peek(UInt8(ascii: "}")) { pos += 1; return }
                throw syntax(expecting: "',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            try enter(depth + 1)
            pos += 1
            skipWhitespace()
            if peek(UInt8(ascii: "]")) { pos += 1; return }
            while true {
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek(UInt8(ascii: ",")) { pos += 1; continue }
                if peek(UInt8(ascii: "]")) { pos += 1; return }
                throw syntax(expecting: "',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            var escaped = false
            try skipString(escaped: &escaped)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case let b: throw syntax("unexpected \(describe(b)), expected a value")
        }
    }

    /// True when one of the 8 bytes of `w` is a bracket, a brace or a quote. `[`/`{` and `]`/`}`
    /// differ only in bit 0x20, so setting that bit leaves two values to look for, plus `"`.
    @inline(__always)
    static func hasStructural(_ w: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasByte(_ x: UInt64, _ b: UInt64) -> Bool {
            let y = x ^ (ones &* b)
            return (y &- ones) & ~y & highs != 0
        }
        let folded = w | (ones &* 0x20)
        return hasByte(folded, 0x7B) || hasByte(folded, 0x7D) || hasByte(w, 0x22)
    }

    private mutating func skipString(escaped: inout Bool) throws(ServeError) {
        let start = pos
        pos += 1
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") { pos += 1; return }
            if b == UInt8(ascii: "\\") {
                escaped = true
                pos += 1
                guard pos < bytes.count else { break }
                switch bytes[pos] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"), UInt8(ascii: "u"):
                    pos += 1
                case let c: throw syntax("invalid escape in a string: a backslash followed by \(describe(c))")
                }
                continue
            }
            if b < 0x20 { throw syntax("raw control character \(describe(b)) in a string; it must be escaped") }
            pos += 1
        }
        throw .badRequest("the request is not valid JSON: a string is not closed before the end of the input at byte \(start)")
    }

    private mutating func skipNumber() throws(ServeError) {
        let (end, expected) = JSONNumberGrammar.scan(bytes, from: pos)
        pos = end
        if let expected { throw syntax(expecting: expected) }
    }

    private mutating func literal(_ word: StaticString) throws(ServeError) {
        guard JSONText.hasLiteral(word, in: bytes, at: pos) else {
            throw syntax("unexpected \(describe(bytes[pos])), expected a value")
        }
        pos += word.utf8CodeUnitCount
    }

    // MARK: - Helpers

    private func enter(_ depth: Int) throws(ServeError) {
        if depth > maxDepth { throw .badRequest("the request nests deeper than \(maxDepth) levels (at byte \(pos))") }
    }

    private mutating func skipWhitespace() { pos = JSONText.skipWhitespace(bytes, from: pos) }

    private func peek(_ b: UInt8) -> Bool { pos < bytes.count && bytes[pos] == b }

    private func syntax(_ message: String) -> ServeError {
        .badRequest("the request is not valid JSON: \(message) at byte \(pos)")
    }

    private func syntax(expecting what: String) -> ServeError {
        if pos >= bytes.count { return syntax("unexpected end of the input, expected \(what)") }
        return syntax("unexpected \(describe(bytes[pos])), expected \(what)")
    }

    private func describe(_ b: UInt8) -> String { JSONText.describe(b) }
}
