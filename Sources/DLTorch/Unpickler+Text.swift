/// Protocol 0's text arguments: decimal LONGs, quoted STRINGs, raw-unicode-escape UNICODEs and the
/// `repr` of a storage tuple that a text PERSID holds. Each parser accepts exactly its form and
/// returns nil for anything else.
extension Unpickler {
    /// The little-endian two's complement bytes of decimal `s` (optional sign), fewest bytes.
    static func decimalBytes(_ s: String) -> [UInt8]? {
        var digits = Substring(s)
        let negative = digits.first == "-"
        if negative || digits.first == "+" { digits = digits.dropFirst() }
        guard !digits.isEmpty else { return nil }
        var mag: [UInt8] = [0]  // little-endian magnitude
        for c in digits.utf8 {
            guard c >= 0x30, c <= 0x39 else { return nil }
            var carry = Int(c - 0x30)
            for i in mag.indices {
                let v = Int(mag[i]) * 10 + carry
                mag[i] = UInt8(v & 0xFF)
                carry = v >> 8
            }
            while carry > 0 { mag.append(UInt8(carry & 0xFF)); carry >>= 8 }
        }
        if negative {  // two's complement: invert and add one
            var carry = 1
            for i in mag.indices {
                let v = Int(~mag[i]) + carry
                mag[i] = UInt8(v & 0xFF)
                carry = v >> 8
            }
        }
        // One sign byte when the top bit disagrees with the sign, then trim redundant ones.
        let sign: UInt8 = negative ? 0xFF : 0
        if (mag[mag.count - 1] & 0x80 != 0) != negative { mag.append(sign) }
        while mag.count > 1, mag[mag.count - 1] == sign, (mag[mag.count - 2] & 0x80 != 0) == negative { mag.removeLast() }
        return mag
    }

    /// The bytes of a Python 2 `repr` of a str: quoted with ' or ", backslash escapes
    /// (\\ \' \" \n \t \r \a \b \f \v, \xHH, octal \ooo).
    static func quotedString(_ s: String) -> [UInt8]? {
        let b = Array(s.utf8)
        guard b.count >= 2, let q = b.first, q == 0x27 || q == 0x22, b.last == q else { return nil }
        var out: [UInt8] = []
        var i = 1
        let end = b.count - 1
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: nil
            }
        }
        while i < end {
            let c = b[i]
            i += 1
            guard c == 0x5C else { out.append(c); continue }
            guard i < end else { return nil }
            let e = b[i]
            i += 1
            switch e {
            case 0x5C, 0x27, 0x22: out.append(e)
            case 0x6E: out.append(0x0A)
            case 0x74: out.append(0x09)
            case 0x72: out.append(0x0D)
            case 0x61: out.append(0x07)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x76: out.append(0x0B)
            case 0x78:
                guard i + 1 < end, let h = hex(b[i]), let l = hex(b[i + 1]) else { return nil }
                out.append(h << 4 | l)
                i += 2
            case 0x30...0x37:
                var v = Int(e - 0x30)
                var n = 1
                while n < 3, i < end, b[i] >= 0x30, b[i] <= 0x37 { v = v * 8 + Int(b[i] - 0x30); i += 1; n += 1 }
                out.append(UInt8(v & 0xFF))
            default: out.append(0x5C); out.append(e)  // unknown escapes stay as they are
            }
        }
        return out
    }

    /// raw-unicode-escape: bytes are Latin-1 code points, except `\uXXXX` and `\UXXXXXXXX`.
    static func rawUnicodeEscape(_ b: UnsafeRawBufferPointer) -> String {
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 1 < b.count, b[i + 1] == 0x75 || b[i + 1] == 0x55 {
                let n = b[i + 1] == 0x75 ? 4 : 8
                if i + 2 + n <= b.count,
                   let v = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: b[(i + 2)..<(i + 2 + n)]), as: UTF8.self), radix: 16),
                   let u = Unicode.Scalar(v) {
                    scalars.append(u)
                    i += 2 + n
                    continue
                }
            }
            scalars.append(Unicode.Scalar(b[i]))
            i += 1
        }
        return String(scalars)
    }

    /// A text persistent id: `repr` of the storage tuple, e.g.
    /// `('storage', <class 'torch.FloatStorage'>, '9460', 'cpu', 6, None)`. Strings, integers,
    /// None, nested tuples and `<class 'module.Name'>` (resolved like GLOBAL, so anything outside
    /// the allowed globals is refused by name). Nil when the text is not of that form.
    func persistentText(_ text: String) throws(TorchError) -> PickleObject? {
        var p = Substring(text).utf8[...]
        func skipSpace() { while p.first == 0x20 { p = p.dropFirst() } }
        func value(_ depth: Int) throws(TorchError) -> PickleObject? {
            skipSpace()
            guard depth < 8, let c = p.first else { return nil }
            switch c {
            case 0x28:  // (
                p = p.dropFirst()
                var items: [PickleObject] = []
                while true {
                    skipSpace()
                    if p.first == 0x29 { p = p.dropFirst(); return .tuple(items) }
                    guard let v = try value(depth + 1) else { return nil }
                    items.append(v)
                    skipSpace()
                    if p.first == 0x2C { p = p.dropFirst() } else if p.first != 0x29 { return nil }
                }
            case 0x27, 0x22:  // a quoted string
                var q = p.dropFirst()
                var escaped = false
                while let x = q.first, escaped || x != c { escaped = !escaped && x == 0x5C; q = q.dropFirst() }
                guard !q.isEmpty else { return nil }
                let literal = String(Substring(p[p.startIndex...q.startIndex]))
                p = q.dropFirst()
                guard let b = Self.quotedString(literal) else { return nil }
                return .value(.string(String(decoding: b, as: UTF8.self)))
            case 0x3C:  // <class 'module.Name'>
                let prefix = "<class '".utf8
                guard p.starts(with: prefix) else { return nil }
                let rest = p.dropFirst(prefix.count)
                guard let close = rest.firstIndex(of: 0x27), rest[close...].starts(with: "'>".utf8) else { return nil }
                let dotted = String(Substring(rest[..<close]))
                p = rest[close...].dropFirst(2)
                guard let dot = dotted.lastIndex(of: ".") else { return nil }
                return try global(module: String(dotted[..<dot]), name: String(dotted[dotted.index(after: dot)...]))
            case 0x4E:  // None
                guard p.starts(with: "None".utf8) else { return nil }
                p = p.dropFirst(4)
                return .value(.none)
            default:
                var digits = ""
                while let x = p.first, (x >= 0x30 && x <= 0x39) || (x == 0x2D && digits.isEmpty) || x == 0x4C {
                    if x != 0x4C { digits.append(Character(Unicode.Scalar(x))) }
                    p = p.dropFirst()
                }
                guard let i = Int(digits) else { return nil }
                return .value(.int(i))
            }
        }
        guard let v = try value(0) else { return nil }
        skipSpace()
        return p.isEmpty ? v : nil
    }
}
