/// A restricted pickle interpreter: it builds data and never runs code.
///
/// It reads the opcodes of protocols 0-5 that describe data (numbers, strings, bytes, tuples,
/// lists, dicts, sets, memo, marks, frames), and resolves globals through `PickleGlobal`, which
/// knows only what `torch.load(weights_only=True)` allows. A GLOBAL or STACK_GLOBAL naming
/// anything else stops the read at once with `TorchError.forbiddenGlobal`, so nothing later in
/// the pickle is even built. REDUCE, NEWOBJ and BUILD act only on those known globals, each by a
/// fixed rule written here (a tensor record, an `OrderedDict`, a tuple for `torch.Size`, ...).
/// Protocol 0's text opcodes (INT, LONG, FLOAT, STRING, UNICODE, PUT, GET, DICT, LIST, TUPLE)
/// read too, and so does a text PERSID that spells a storage id as `repr` of its tuple (what
/// `torch.save(pickle_protocol=0)` writes; see `persistentText`). Opcodes that could reach the
/// outside (INST, OBJ, the extension registry, out-of-band buffers) are refused.
///
/// Bounds: the stack, the mark stack and the memo are capped, integers are capped at
/// `maxLongBytes`, and converting the result is capped in depth and in total nodes, so memo
/// references cannot make a small file expand exponentially.
struct Unpickler {
    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22
    static let maxLongBytes = 1024
    static let maxDepth = 1000

    let bytes: UnsafeRawBufferPointer
    let path: String
    let entry: String
    let torchScript: Bool
    private(set) var position: Int
    private var stack: [PickleObject] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleObject] = [:]
    private var opOffset = 0
    /// The element type of every storage the pickle referred to, by root key (nil: untyped);
    /// legacy files size their storage records with it.
    private(set) var storageTypes: [String: TorchScalarType?] = [:]

    /// Offset of the opcode being interpreted.
    func opStart() -> Int { opOffset }

    init(_ bytes: UnsafeRawBufferPointer, path: String, entry: String, offset: Int = 0, torchScript: Bool = false) {
        self.bytes = bytes
        self.path = path
        self.entry = entry
        self.position = offset
        self.torchScript = torchScript
    }

    /// Reads one pickle (up to STOP) and returns its value; `position` is then just after STOP.
    mutating func load() throws(TorchError) -> TorchValue {
        stack = []
        marks = []
        memo = [:]
        let top = try run()
        // Honest pickles build about one value per byte or two; memo references may share more.
        // The floor bounds a small hostile pickle of shared references (a 1.8 KB one took 5 s
        // to expand 1M values under ASan, 20 s and more on a loaded machine).
        var budget = max(1 << 17, bytes.count * 8)
        return try convert(top, depth: 0, budget: &budget)
    }

    // MARK: errors

    private func invalid(_ detail: String) -> TorchError {
        .invalidPickle(path: path, entry: entry, offset: opOffset, detail: detail)
    }

    private func limit(_ what: String) -> TorchError {
        .limitExceeded(path: path, entry: entry, offset: opOffset, what: what)
    }

    // MARK: reading bytes

    private mutating func byte() throws(TorchError) -> UInt8 {
        guard position < bytes.count else { throw invalid("the pickle is truncated: it ends before STOP") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func take(_ n: Int) throws(TorchError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else {
            throw invalid("needs \(n) bytes, but only \(bytes.count - position) remain: the pickle is truncated")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    private mutating func uint(_ n: Int) throws(TorchError) -> UInt64 {
        let b = try take(n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
        return v
    }

    private mutating func length(_ n: Int) throws(TorchError) -> Int {
        let v = try uint(n)
        guard v <= UInt64(bytes.count - position) else {
            throw invalid("a length of \(v) bytes runs past the end of the pickle (\(bytes.count - position) remain)")
        }
        return Int(v)
    }

    private mutating func line() throws(TorchError) -> String {
        String(decoding: try lineBytes(), as: UTF8.self)
    }

    private mutating func lineBytes() throws(TorchError) -> UnsafeRawBufferPointer {
        var end = position
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw invalid("a text argument has no end of line") }
        let b = UnsafeRawBufferPointer(rebasing: bytes[position..<end])
        position = end + 1
        return b
    }

    // MARK: the stack

    private mutating func push(_ v: PickleObject) throws(TorchError) {
        guard stack.count < Self.maxStack else { throw limit("the pickle stack passes \(Self.maxStack) entries") }
        stack.append(v)
    }

    private mutating func pop() throws(TorchError) -> PickleObject {
        guard let v = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw invalid("pops from an empty stack") }
        return v
    }

    private func peek() throws(TorchError) -> PickleObject {
        guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw invalid("reads an empty stack") }
        return v
    }

    private mutating func popMark() throws(TorchError) -> [PickleObject] {
        guard let m = marks.popLast() else { throw invalid("no MARK to pop to") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func memoize(_ index: Int) throws(TorchError) {
        guard index >= 0 else { throw invalid("negative memo index") }
        if memo[index] == nil, memo.count >= Self.maxMemo { throw limit("the memo passes \(Self.maxMemo) entries") }
        memo[index] = try peek()
    }

    private func recall(_ index: Int) throws(TorchError) -> PickleObject {
        guard let v = memo[index] else { throw invalid("memo entry \(index) was never stored") }
        return v
    }

    private func int(_ o: PickleObject, _ what: String) throws(TorchError) -> Int {
        switch o {
        case .value(.int(let i)): return i
        case .value(.bool(let b)): return b ? 1 : 0
        default: throw invalid("\(what) should be an integer, not \(o.kindDescription)")
        }
    }

    private func string(_ o: PickleObject, _ what: String) throws(TorchError) -> String {
        switch o {
        case .value(.string(let s)): return s
        case .value(.bytes(let b)): return String(decoding: b, as: UTF8.self)
        default: throw invalid("\(what) should be a string, not \(o.kindDescription)")
        }
    }

    // MARK: the interpreter

    private mutating func run() throws(TorchError) -> PickleObject {
        while true {
            opOffset = position
            let op = try byte()
            switch op {
            case 0x80: // PROTO
                let v = try byte()
                guard v <= 5 else { throw invalid("pickle protocol \(v) is newer than 5") }
            case 0x95: // FRAME
                _ = try uint(8)
            case 0x2E: // STOP
                let v = try pop()
                return v
            case 0x28: // MARK
                guard marks.count < Self.maxStack else { throw limit("too many MARKs") }
                marks.append(stack.count)
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: try push(try peek()) // DUP

            case 0x4E: try push(.value(.none))
            case 0x88: try push(.value(.bool(true)))
            case 0x89: try push(.value(.bool(false)))
            case 0x4A: // BININT
                try push(.value(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))))
            case 0x4B: try push(.value(.int(Int(try byte())))) // BININT1
            case 0x4D: try push(.value(.int(Int(try uint(2))))) // BININT2
            case 0x8A: // LONG1
                let n = Int(try byte())
                try push(.value(try Self.long(try take(n))))
            case 0x8B: // LONG4
                let n = Int(try uint(4))
                guard n <= Self.maxLongBytes else { throw limit("an integer of \(n) bytes passes the limit of \(Self.maxLongBytes)") }
                try push(.value(try Self.long(try take(n))))
            case 0x49: // INT (text; "I01" and "I00" are True and False)
                let s = try line()
                if s == "01" { try push(.value(.bool(true))) } else if s == "00" { try push(.value(.bool(false))) } else {
                    guard let i = Int(s) else { throw invalid("INT argument '\(s.prefix(40))' is not an integer") }
                    try push(.value(.int(i)))
                }
            case 0x4C: // LONG (text, decimal; protocol 0 and 1 write the legacy magic number so)
                var s = try line()
                if s.hasSuffix("L") { s.removeLast() }
                if let i = Int(s) { try push(.value(.int(i))); break }
                guard s.utf8.count <= Self.maxLongBytes * 2, let b = Self.decimalBytes(s) else {
                    throw invalid("LONG argument '\(s.prefix(40))' is not an integer")
                }
                try push(.value(.bigInt(b)))
            case 0x47: // BINFLOAT (big-endian)
                let b = try take(8)
                var bits: UInt64 = 0
                for i in 0..<8 { bits = bits << 8 | UInt64(b[i]) }
                try push(.value(.float(Double(bitPattern: bits))))
            case 0x46: // FLOAT (text)
                let s = try line()
                guard let d = Double(s) else { throw invalid("FLOAT argument '\(s.prefix(40))' is not a number") }
                try push(.value(.float(d)))

            case 0x58: try push(.value(.string(Self.utf8(try take(try length(4)))))) // BINUNICODE
            case 0x8C: try push(.value(.string(Self.utf8(try take(Int(try byte())))))) // SHORT_BINUNICODE
            case 0x8D: try push(.value(.string(Self.utf8(try take(try length(8)))))) // BINUNICODE8
            case 0x55: try push(.value(.string(Self.python2String(try take(Int(try byte())))))) // SHORT_BINSTRING
            case 0x54: // BINSTRING (signed 4-byte length)
                let n = Int32(bitPattern: UInt32(try uint(4)))
                guard n >= 0 else { throw invalid("negative BINSTRING length") }
                try push(.value(.string(Self.python2String(try take(Int(n))))))
            case 0x53: // STRING (text: a quoted Python 2 str with backslash escapes)
                let s = try line()
                guard let b = Self.quotedString(s) else { throw invalid("STRING argument '\(s.prefix(40))' is not a quoted string") }
                try push(.value(.string(b.withUnsafeBytes { Self.python2String($0) })))
            case 0x56: // UNICODE (text: raw-unicode-escape)
                try push(.value(.string(Self.rawUnicodeEscape(try lineBytes()))))
            case 0x42: try push(.value(.bytes(Array(try take(try length(4)))))) // BINBYTES
            case 0x43: try push(.value(.bytes(Array(try take(Int(try byte())))))) // SHORT_BINBYTES
            case 0x8E, 0x96: try push(.value(.bytes(Array(try take(try length(8)))))) // BINBYTES8, BYTEARRAY8

            case 0x29: try push(.tuple([])) // EMPTY_TUPLE
            case 0x85: let a = try pop(); try push(.tuple([a])) // TUPLE1
            case 0x86: let b = try pop(); let a = try pop(); try push(.tuple([a, b])) // TUPLE2
            case 0x87: let c = try pop(); let b = try pop(); let a = try pop(); try push(.tuple([a, b, c])) // TUPLE3
            case 0x74: try push(.tuple(try popMark())) // TUPLE
            case 0x5D: try push(.list(PickleList())) // EMPTY_LIST
            case 0x6C: try push(.list(PickleList(try popMark()))) // LIST
            case 0x7D: try push(.dict(PickleDict())) // EMPTY_DICT
            case 0x64: // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw invalid("DICT with an odd number of items") }
                let d = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                try push(.dict(d))
            case 0x8F: try push(.set(PickleList())) // EMPTY_SET
            case 0x91: try push(.set(PickleList(try popMark()))) // FROZENSET
            case 0x61: // APPEND
                let v = try pop()
                guard case .list(let l) = try peek() else { throw invalid("APPEND to \(try peek().kindDescription), not a list") }
                l.items.append(v)
            case 0x65: // APPENDS
                let vs = try popMark()
                guard case .list(let l) = try peek() else { throw invalid("APPENDS to \(try peek().kindDescription), not a list") }
                l.items.append(contentsOf: vs)
            case 0x90: // ADDITEMS
                let vs = try popMark()
                guard case .set(let l) = try peek() else { throw invalid("ADDITEMS to \(try peek().kindDescription), not a set") }
                l.items.append(contentsOf: vs)
            case 0x73: // SETITEM
                let v = try pop()
                let k = try pop()
                try setItems([k, v])
            case 0x75: // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw invalid("SETITEMS with an odd number of items") }
                try setItems(items)

            case 0x71: try memoize(Int(try byte())) // BINPUT
            case 0x72: try memoize(Int(try uint(4))) // LONG_BINPUT
            case 0x94: try memoize(memo.count) // MEMOIZE
            case 0x70: // PUT (text)
                let s = try line()
                guard let i = Int(s) else { throw invalid("PUT argument '\(s.prefix(40))' is not an index") }
                try memoize(i)
            case 0x68: try push(try recall(Int(try byte()))) // BINGET
            case 0x6A: try push(try recall(Int(try uint(4)))) // LONG_BINGET
            case 0x67: // GET (text)
                let s = try line()
                guard let i = Int(s) else { throw invalid("GET argument '\(s.prefix(40))' is not an index") }
                try push(try recall(i))

            case 0x63: // GLOBAL
                let module = try line()
                let name = try line()
                try push(try global(module: module, name: name))
            case 0x93: // STACK_GLOBAL
                let name = try string(try pop(), "STACK_GLOBAL name")
                let module = try string(try pop(), "STACK_GLOBAL module")
                try push(try global(module: module, name: name))
            case 0x51: // BINPERSID
                try push(try noteStorage(try persistent(try pop())))
            case 0x50: // PERSID (text)
                let s = try line()
                guard let pid = try persistentText(s) else {
                    throw invalid("a text persistent id '\(s.prefix(60))' is not a storage id")
                }
                try push(try noteStorage(try persistent(pid)))
            case 0x52: // REDUCE
                let args = try pop()
                let f = try pop()
                guard case .tuple(let a) = args else { throw invalid("REDUCE arguments are \(args.kindDescription), not a tuple") }
                try push(try call(f, a))
            case 0x81: // NEWOBJ
                let args = try pop()
                let cls = try pop()
                guard case .tuple(let a) = args else { throw invalid("NEWOBJ arguments are \(args.kindDescription), not a tuple") }
                try push(try new(cls, a))
            case 0x92: // NEWOBJ_EX
                let kwargs = try pop()
                let args = try pop()
                let cls = try pop()
                guard case .tuple(let a) = args else { throw invalid("NEWOBJ_EX arguments are not a tuple") }
                if case .dict(let d) = kwargs, !d.items.isEmpty { throw invalid("NEWOBJ_EX with keyword arguments") }
                try push(try new(cls, a))
            case 0x62: // BUILD
                let state = try pop()
                try build(try peek(), state)
            default:
                throw TorchError.unsupportedOpcode(path: path, entry: entry, offset: opOffset, opcode: op)
            }
        }
    }

    private mutating func noteStorage(_ o: PickleObject) -> PickleObject {
        if case .storage(let s) = o { storageTypes[s.key] = s.scalarType }
        return o
    }

    private mutating func setItems(_ items: [PickleObject]) throws(TorchError) {
        let target = try peek()
        let d: PickleDict
        switch target {
        case .dict(let x): d = x
        case .object(let o): d = o.attributes
        default: throw invalid("SETITEM on \(target.kindDescription), not a dict")
        }
        for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
    }

    static func utf8(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }

    /// A Python 2 `str`: torch.load decodes them as UTF-8; bytes that are not UTF-8 read as Latin-1.
    static func python2String(_ b: UnsafeRawBufferPointer) -> String {
        if let s = String(validating: b, as: UTF8.self) { return s }
        return String(String.UnicodeScalarView(b.map { Unicode.Scalar($0) }))
    }

    /// A little-endian two's complement integer of any width.
    static func long(_ b: UnsafeRawBufferPointer) throws(TorchError) -> TorchValue {
        if b.isEmpty { return .int(0) }
        guard b.count <= 8 else {
            // Wider than 64 bits: keep it when it still fits (sign extension bytes), else as bytes.
            let sign: UInt8 = b[b.count - 1] & 0x80 != 0 ? 0xFF : 0
            if b[8...].allSatisfy({ $0 == sign }) && (b[7] & 0x80 != 0) == (sign != 0) {
                return try long(UnsafeRawBufferPointer(rebasing: b[0..<8]))
            }
            return .bigInt(Array(b))
        }
        var v: UInt64 = 0
        for i in (0..<b.count).reversed() { v = v << 8 | UInt64(b[i]) }
        if b.count < 8, b[b.count - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(b.count)) }
        return .int(Int(Int64(bitPattern: v)))
    }
}
