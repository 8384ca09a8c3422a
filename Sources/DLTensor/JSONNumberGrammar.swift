/// The JSON number grammar, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, shared by the
/// strict parser and the request scanner of dlserve so both accept exactly the same numbers.
public enum JSONNumberGrammar {
    /// Matches a number starting at `start`.
    /// - Returns: the offset just past it, or the offset of the first byte that breaks the grammar
    ///   with what was expected there.
    public static func scan(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (end: Int, expected: String?) {
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
