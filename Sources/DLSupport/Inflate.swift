/// A DEFLATE (RFC 1951) decoder for the few compressed entries a TorchScript archive carries
/// (its `code/` sources). Output is capped at the size the zip directory declares; any broken
/// code, distance before the start, or overrun throws instead of reading out of bounds.
package enum Inflate {
    package struct Failure: Error { package let detail: String }

    /// Decompresses `input` into exactly `expectedSize` bytes.
    package static func decompress(_ input: UnsafeRawBufferPointer, expectedSize: Int) throws(Failure) -> [UInt8] {
        var s = State(input: input, limit: expectedSize)
        var last = false
        while !last {
            last = try s.bits(1) == 1
            switch try s.bits(2) {
            case 0: try s.stored()
            case 1: try s.block(Huffman.fixedLiterals, Huffman.fixedDistances)
            case 2:
                let (lit, dist) = try s.dynamicTables()
                try s.block(lit, dist)
            default: throw Failure(detail: "invalid block type")
            }
        }
        guard s.out.count == expectedSize else {
            throw Failure(detail: "inflated to \(s.out.count) bytes, but the directory says \(expectedSize)")
        }
        return s.out
    }

    /// Canonical Huffman decoding tables: symbol counts per length and symbols in code order.
    struct Huffman {
        var counts = [Int](repeating: 0, count: 16)
        var symbols: [Int] = []

        init(lengths: [Int]) throws(Failure) {
            for l in lengths { counts[l] += 1 }
            counts[0] = 0
            var left = 1
            for len in 1..<16 {
                left <<= 1
                left -= counts[len]
                if left < 0 { throw Failure(detail: "over-subscribed Huffman code") }
            }
            var offs = [Int](repeating: 0, count: 16)
            for len in 1..<15 { offs[len + 1] = offs[len] + counts[len] }
            symbols = [Int](repeating: 0, count: lengths.count)
            for (sym, l) in lengths.enumerated() where l != 0 {
                symbols[offs[l]] = sym
                offs[l] += 1
            }
        }

        static let fixedLiterals: Huffman = {
            var l = [Int](repeating: 8, count: 288)
            for i in 144..<256 { l[i] = 9 }
            for i in 256..<280 { l[i] = 7 }
            return (try? Huffman(lengths: l)) ?? Huffman.empty
        }()
        static let fixedDistances: Huffman = (try? Huffman(lengths: [Int](repeating: 5, count: 30))) ?? Huffman.empty
        static let empty = Huffman()
        private init() {}
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                           4097, 6145, 8193, 12289, 16385, 24577]
    static let distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    struct State {
        let input: UnsafeRawBufferPointer
        let limit: Int
        var pos = 0
        var bitBuf = 0
        var bitCount = 0
        var out: [UInt8] = []

        init(input: UnsafeRawBufferPointer, limit: Int) {
            self.input = input
            self.limit = limit
            out.reserveCapacity(max(0, min(limit, 1 << 26)))
        }

        mutating func bits(_ n: Int) throws(Failure) -> Int {
            while bitCount < n {
                guard pos < input.count else { throw Failure(detail: "compressed data ends early") }
                bitBuf |= Int(input[pos]) << bitCount
                pos += 1
                bitCount += 8
            }
            let v = bitBuf & ((1 << n) - 1)
            bitBuf >>= n
            bitCount -= n
            return v
        }

        mutating func emit(_ b: UInt8) throws(Failure) {
            guard out.count < limit else { throw Failure(detail: "inflates past the declared size \(limit)") }
            out.append(b)
        }

        mutating func stored() throws(Failure) {
            bitBuf = 0
            bitCount = 0
            guard pos + 4 <= input.count else { throw Failure(detail: "stored block header ends early") }
            let len = Int(input[pos]) | Int(input[pos + 1]) << 8
            let nlen = Int(input[pos + 2]) | Int(input[pos + 3]) << 8
            pos += 4
            guard len == (~nlen & 0xFFFF) else { throw Failure(detail: "stored block length check fails") }
            guard pos + len <= input.count else { throw Failure(detail: "stored block ends early") }
            guard out.count + len <= limit else { throw Failure(detail: "inflates past the declared size \(limit)") }
            out.append(contentsOf: input[pos..<(pos + len)])
            pos += len
        }

        mutating func decode(_ h: Huffman) throws(Failure) -> Int {
            var code = 0, first = 0, index = 0
            for len in 1..<16 {
                code |= try bits(1)
                let count = h.counts[len]
                if code - count < first { return h.symbols[index + (code - first)] }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw Failure(detail: "invalid Huffman code")
        }

        mutating func block(_ lit: Huffman, _ dist: Huffman) throws(Failure) {
            while true {
                let sym = try decode(lit)
                if sym < 256 { try emit(UInt8(sym)); continue }
                if sym == 256 { return }
                let li = sym - 257
                guard li < 29 else { throw Failure(detail: "invalid length symbol") }
                let len = Inflate.lengthBase[li] + (try bits(Inflate.lengthExtra[li]))
                let ds = try decode(dist)
                guard ds < 30 else { throw Failure(detail: "invalid distance symbol") }
                let d = Inflate.distBase[ds] + (try bits(Inflate.distExtra[ds]))
                guard d <= out.count else { throw Failure(detail: "a distance reaches before the start") }
                guard out.count + len <= limit else { throw Failure(detail: "inflates past the declared size \(limit)") }
                let start = out.count - d
                for i in 0..<len { out.append(out[start + i]) }
            }
        }

        mutating func dynamicTables() throws(Failure) -> (Huffman, Huffman) {
            let nlen = try bits(5) + 257
            let ndist = try bits(5) + 1
            let ncode = try bits(4) + 4
            guard nlen <= 286, ndist <= 30 else { throw Failure(detail: "too many codes") }
            let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
            var cl = [Int](repeating: 0, count: 19)
            for i in 0..<ncode { cl[order[i]] = try bits(3) }
            let clh = try Huffman(lengths: cl)
            var lengths: [Int] = []
            while lengths.count < nlen + ndist {
                let sym = try decode(clh)
                switch sym {
                case 0..<16: lengths.append(sym)
                case 16:
                    guard let prev = lengths.last else { throw Failure(detail: "repeat with no previous length") }
                    lengths += repeatElement(prev, count: 3 + (try bits(2)))
                case 17: lengths += repeatElement(0, count: 3 + (try bits(3)))
                default: lengths += repeatElement(0, count: 11 + (try bits(7)))
                }
            }
            guard lengths.count == nlen + ndist else { throw Failure(detail: "code lengths overrun") }
            return (try Huffman(lengths: Array(lengths[0..<nlen])), try Huffman(lengths: Array(lengths[nlen...])))
        }
    }
}
