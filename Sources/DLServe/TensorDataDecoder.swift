#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLSupport
import DLTensor

/// Reads the `data` of a request tensor from the request's bytes straight into a new tensor.
///
/// JSON data is either flat (one array of `count` scalars, row-major) or nested exactly as the
/// shape (an array of `shape[0]` arrays of `shape[1]` ... scalars); a rank-0 tensor may also be a
/// bare scalar. Floats accept JSON numbers and the strings "NaN", "Infinity", "-Infinity" and are
/// rounded correctly (nearest, ties to even) to the element type; integers must be whole and in
/// range; BOOL takes true/false or 0/1. Base64 data is a string of the little-endian element bytes.
///
/// The line must be followed in memory by a byte that is not part of a number (the reader keeps a
/// NUL or the newline there): slow-path float parsing uses `strtod`, which reads one byte past.
enum TensorDataDecoder {
    /// Decodes `range` of `line` (a JSON value already checked to be well-formed).
    static func decode(
        line: UnsafeRawBufferPointer, range: Range<Int>, dtype: DType, shape: [Int], count: Int,
        base64: Bool, label: String
    ) throws(ServeError) -> Tensor {
        var tensor = Tensor(zeros: dtype, shape: shape)
        let data = UnsafeRawBufferPointer(rebasing: line[range])
        var failure: ServeError?
        tensor.withUnsafeMutableBytes { out in
            do throws(ServeError) {
                if base64 {
                    try decodeBase64(data, into: out, dtype: dtype, label: label)
                } else {
                    try decodeJSON(data, into: out, dtype: dtype, shape: shape, count: count, label: label)
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        return tensor
    }

    /// A tensor from binary tensor data: the little-endian element bytes, exactly the size of
    /// `shape` (checked by the caller); BOOL bytes other than 0 read as true.
    static func decodeBinary(_ bytes: UnsafeRawBufferPointer, dtype: DType, shape: [Int], label: String) throws(ServeError) -> Tensor {
        var tensor: Tensor
        do { tensor = try Tensor(dtype: dtype, shape: shape, bytes: bytes) } catch {
            throw .badRequest("\(label): \(error)")
        }
        if dtype == .bool {
            tensor.withUnsafeMutableBytes { out in
                for i in 0..<out.count where out[i] > 1 { out[i] = 1 }
            }
        }
        return tensor
    }

    // MARK: - JSON

    static func decodeJSON(
        _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, dtype: DType,
        shape: [Int], count: Int, label: String
    ) throws(ServeError) {
        switch dtype {
        case .float32: try walk(data, out, Float.self, shape: shape, count: count, label: label)
        case .float64: try walk(data, out, Double.self, shape: shape, count: count, label: label)
        case .float16: try walk(data, out, HalfScalar.self, shape: shape, count: count, label: label)
        case .int8: try walk(data, out, Int8.self, shape: shape, count: count, label: label)
        case .int16: try walk(data, out, Int16.self, shape: shape, count: count, label: label)
        case .int32: try walk(data, out, Int32.self, shape: shape, count: count, label: label)
        case .int64: try walk(data, out, Int64.self, shape: shape, count: count, label: label)
        case .uint8: try walk(data, out, UInt8.self, shape: shape, count: count, label: label)
        case .uint16: try walk(data, out, UInt16.self, shape: shape, count: count, label: label)
        case .uint32: try walk(data, out, UInt32.self, shape: shape, count: count, label: label)
        case .uint64: try walk(data, out, UInt64.self, shape: shape, count: count, label: label)
        case .bool: try walk(data, out, BoolScalar.self, shape: shape, count: count, label: label)
        case .bfloat16, .string, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0,
             .float4e2m1, .int4, .uint4, .int2, .uint2:
            throw .badRequest("\(label) has the unsupported datatype \(dtype.inferenceProtocolName)")
        }
    }

    /// Reads `data` (flat or nested arrays, or one bare scalar) into `out` as `S`, checking the
    /// JSON grammar of every token and separator as it goes (the scanner only matched brackets).
    static func walk<S: WireScalar>(
        _ data: UnsafeRawBufferPointer, _ out: UnsafeMutableRawBufferPointer, _: S.Type,
        shape: [Int], count: Int, label: String
    ) throws(ServeError) {
        guard let base = data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count > 0 else {
            throw .badRequest("\(label) has no data")
        }
        var reader = DataReader<S>(
            base: base, n: data.count, dst: out.baseAddress?.assumingMemoryBound(to: S.Stored.self),
            shape: shape, count: count, label: label)
        try reader.read()
    }

    // MARK: - Base64

    static func decodeBase64(
        _ data: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, dtype: DType, label: String
    ) throws(ServeError) {
        guard data.count >= 2, data[0] == UInt8(ascii: "\""), data[data.count - 1] == UInt8(ascii: "\"") else {
            throw .badRequest("\(label) has data_encoding \"base64\" but its data is not a string")
        }
        let content = UnsafeRawBufferPointer(rebasing: data[1..<data.count - 1])
        let result: Base64.Outcome
        if content.contains(UInt8(ascii: "\\")) {
            // Some encoders write "/" as "\/": let the strict parser undo escapes.
            guard case .string(let s)? = try? JSONParser.parse(data) else {
                throw .badRequest("\(label) base64 data is not a valid JSON string")
            }
            result = Array(s.utf8).withUnsafeBytes { Base64.decode($0, into: out) }
        } else {
            result = Base64.decode(content, into: out)
        }
        switch result {
        case .ok: break
        case .invalid(let at):
            throw .badRequest("\(label) base64 data has an invalid character at position \(at)")
        case .wrongLength(let got):
            throw .badRequest("\(label) base64 data decodes to \(got.map { "\($0) bytes" } ?? "a partial byte"), its shape needs \(out.count) bytes of \(dtype.inferenceProtocolName)")
        }
        if dtype == .bool {
            // Normalise: any nonzero byte is true.
            for i in 0..<out.count where out[i] > 1 { out[i] = 1 }
        }
    }
}

// MARK: - Walking the data

/// One pass over a `data` value: structure, separators, scalars.
struct DataReader<S: WireScalar> {
    let base: UnsafePointer<UInt8>
    let n: Int
    let dst: UnsafeMutablePointer<S.Stored>?
    let shape: [Int]
    let count: Int
    let label: String
    var pos = 0
    var written = 0

    init(base: UnsafePointer<UInt8>, n: Int, dst: UnsafeMutablePointer<S.Stored>?, shape: [Int], count: Int, label: String) {
        self.base = base
        self.n = n
        self.dst = dst
        self.shape = shape
        self.count = count
        self.label = label
    }

    mutating func read() throws(ServeError) {
        skipWhitespace()
        if pos < n && base[pos] == UInt8(ascii: "[") {
            // Nested when the first element is an array, flat otherwise.
            var p = pos + 1
            while p < n, base[p] == 0x20 || base[p] == 0x09 || base[p] == 0x0A || base[p] == 0x0D { p += 1 }
            if p < n && base[p] == UInt8(ascii: "[") {
                try nested(level: 0)
            } else {
                try flat()
            }
        } else {
            try scalar()
        }
        skipWhitespace()
        guard pos == n else { throw unexpected("after the data") }
        guard written == count else {
            throw .badRequest("\(label) has \(written) values, shape \(shape) needs \(count)")
        }
    }

    /// `[v, v, ...]` with scalars only.
    private mutating func flat() throws(ServeError) {
        pos += 1
        skipWhitespace()
        if pos < n && base[pos] == UInt8(ascii: "]") { pos += 1; return }
        while true {
            if pos < n && base[pos] == UInt8(ascii: "[") {
                throw .badRequest("\(label) data mixes numbers and arrays at one level")
            }
            try scalar()
            guard try nextEntry() else { return }
        }
    }

    /// After an entry: true past a `,` (another entry follows), false past the closing `]`.
    @inline(__always)
    private mutating func nextEntry() throws(ServeError) -> Bool {
        skipWhitespace()
        guard pos < n else { throw unexpected("in an array") }
        if base[pos] == UInt8(ascii: ",") {
            pos += 1
            skipWhitespace()
            return true
        }
        if base[pos] == UInt8(ascii: "]") { pos += 1; return false }
        throw unexpected("in an array, expected ',' or ']'")
    }

    /// An array at depth `level` of data nested as the shape: `shape[level]` entries, arrays
    /// above the last level, scalars at it.
    private mutating func nested(level: Int) throws(ServeError) {
        guard level < shape.count else {
            throw .badRequest("\(label) data nests deeper than its shape \(shape) (rank \(shape.count))")
        }
        pos += 1
        skipWhitespace()
        var length = 0
        if pos < n && base[pos] == UInt8(ascii: "]") {
            pos += 1
        } else {
            let last = level == shape.count - 1
            while true {
                let isArray = pos < n && base[pos] == UInt8(ascii: "[")
                if isArray != !last {
                    throw .badRequest(isArray
                        ? "\(label) data nests deeper than its shape \(shape) (rank \(shape.count))"
                        : "\(label) data has a value at depth \(level + 1), shape \(shape) puts values at depth \(shape.count)")
                }
                if isArray { try nested(level: level + 1) } else { try scalar() }
                length += 1
                guard try nextEntry() else { break }
            }
        }
        guard length == shape[level] else {
            throw .badRequest("\(label) data has \(length) entries at depth \(level + 1), shape \(shape) needs \(shape[level])")
        }
    }

    @inline(__always)
    private mutating func scalar() throws(ServeError) {
        guard written < count, let dst else {
            throw .badRequest("\(label) data has more values than its shape \(shape) holds (\(count))")
        }
        guard pos < n else { throw unexpected("expected a value") }
        let parsed: (S.Stored, Int)?
        if base[pos] == UInt8(ascii: "\"") {
            var e = pos + 1
            while e < n && base[e] != UInt8(ascii: "\"") { e += base[e] == UInt8(ascii: "\\") ? 2 : 1 }
            e = min(e + 1, n)
            parsed = S.parseString(base + pos, e - pos).map { ($0, e - pos) }
        } else {
            parsed = S.parse(base + pos, n - pos)
        }
        guard let (v, length) = parsed else {
            throw .badRequest("\(label) value \(written) is \(tokenText()), not \(S.expected)")
        }
        dst[written] = v
        written += 1
        pos += length
    }

    @inline(__always)
    private mutating func skipWhitespace() {
        while pos < n {
            switch base[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    /// The token at `pos`, shortened, for an error message.
    private func tokenText() -> String {
        var e = pos
        if e < n && base[e] == UInt8(ascii: "\"") {
            e += 1
            while e < n && base[e] != UInt8(ascii: "\"") { e += 1 }
            e = min(e + 1, n)
        } else {
            while e < n {
                switch base[e] {
                case UInt8(ascii: ","), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
                default: e += 1; continue
                }
                break
            }
        }
        let s = String(decoding: UnsafeBufferPointer(start: base + pos, count: min(e - pos, 40)), as: UTF8.self)
        return e - pos > 40 ? s + "..." : s
    }

    private func unexpected(_ context: String) -> ServeError {
        guard pos < n else { return .badRequest("\(label) data ends early \(context)") }
        let b = base[pos]
        let what = b >= 0x20 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte \(b)"
        return .badRequest("\(label) data has an unexpected \(what) \(context)")
    }
}
