/// The JSON number grammar, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, shared by the
/// strict parser and the request scanner of dlserve so both accept exactly the same numbers.
package enum JSONNumberGrammar {
    /// Matches a number starting at `start`.
    /// - Returns: the offset just past it, or the offset of the first byte that breaks the grammar
    ///   with what was expected there.
    package static func scan(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (end: Int, expected: String?) {
        var pos = start
        func at(_ b: UInt8) -> Bool { pos < bytes.count && bytes[pos] == b }
        func digit() -> Bool { pos < bytes.count && bytes[pos] >= 0x30 && bytes[pos] <= 0x39 }
        if at(UInt8(ascii: "-")) { pos += 1 }
        if at(UInt8(ascii: "0")) {
            pos += 1
        } else if digit() {
            while digit() { pos += 1 }
        } else {
            return (pos, "a digit in a number")
        }
        if at(UInt8(ascii: ".")) {
            pos += 1
            guard digit() else { return (pos, "a digit after the decimal point") }
            while digit() { pos += 1 }
        }
        if at(UInt8(ascii: "e")) || at(UInt8(ascii: "E")) {
            pos += 1
            if at(UInt8(ascii: "+")) || at(UInt8(ascii: "-")) { pos += 1 }
            guard digit() else { return (pos, "a digit in the exponent") }
            while digit() { pos += 1 }
        }
        return (pos, nil)
    }
}

/// Byte-level pieces of JSON text shared by the strict parser and dlserve's request scanner.
package enum JSONText {
    /// The offset of the first byte at or after `start` that is not JSON whitespace.
    @inline(__always)
    package static func skipWhitespace(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var pos = start
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return pos
            }
        }
        return pos
    }

    /// Whether the literal `word` (`true`, `false`, `null`) stands at `pos`.
    package static func hasLiteral(_ word: StaticString, in bytes: UnsafeRawBufferPointer, at pos: Int) -> Bool {
        let n = word.utf8CodeUnitCount
        let w = UnsafeRawBufferPointer(start: word.utf8Start, count: n)
        return pos + n <= bytes.count && UnsafeRawBufferPointer(rebasing: bytes[pos..<pos + n]).elementsEqual(w)
    }

    /// A byte for an error message: `'x'` when printable, else `byte 0x1F`.
    package static func describe(_ b: UInt8) -> String {
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        let hex = String(b, radix: 16, uppercase: true)
        return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
    }
}
