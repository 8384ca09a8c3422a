import DLSupport
import DLTensor

/// Turning the header JSON into validated entries. Every rule of the format is checked here, in
/// this order, before any tensor byte is touched:
/// 1. the header is a JSON object; each member name occurs once;
/// 2. `__metadata__`, when present, is an object of string values;
/// 3. every other member is an entry with a known `dtype`, a `shape` of non-negative integers and
///    `data_offsets` of two non-negative integers `[begin, end]` with `begin <= end`;
/// 4. `end − begin` equals element count × dtype width (checked arithmetic);
/// 5. `end` lies inside the data section;
/// 6. sorted by `(begin, end)`, the entries tile the data section from 0 to its end with no hole
///    and no overlap.
extension SafeTensorsFile {
    struct ParsedHeader {
        var entries: [SafeTensorsEntry]
        var metadata: [String: String]
    }

    static let metadataKey = "__metadata__"

    /// Validates the header.
    /// - Parameters:
    ///   - json: the `N` header bytes (which start at file offset 8).
    ///   - dataStart: `8 + N`, where the data section starts.
    ///   - fileSize: the file's length; the data section is `dataStart ..< fileSize`.
    static func parseHeader(
        _ json: UnsafeRawBufferPointer, path: String, dataStart: Int, fileSize: Int
    ) throws(SafeTensorsError) -> ParsedHeader {
        let root: JSON
        do {
            root = try JSONParser.parse(json)
        } catch {
            throw .invalidJSON(path: path, offset: 8 + error.offset, detail: error.message)
        }
        guard case .object(let members) = root else {
            throw .invalidJSON(path: path, offset: 8, detail: "the header must be a JSON object, not \(root.kindDescription)")
        }

        let context = EntryContext(path: path, dataStart: dataStart, dataSize: fileSize - dataStart)
        var metadata: [String: String]?
        var seen = Set<String>()
        seen.reserveCapacity(members.count)
        var found: [SafeTensorsEntry] = []
        found.reserveCapacity(members.count)
        for m in members {
            let offset = 8 + m.offset
            guard seen.insert(m.key).inserted else {
                throw .duplicateName(path: path, name: m.key, offset: offset)
            }
            if m.key == metadataKey {
                metadata = try parseMetadata(m.value, path: path, offset: offset)
            } else {
                found.append(try context.entry(named: m.key, value: m.value, offset: offset))
            }
        }

        // Order by where the bytes are; ties (empty tensors) keep their order in the header.
        let order = found.indices.sorted { a, b in
            let x = found[a].dataOffsets, y = found[b].dataOffsets
            if x.lowerBound != y.lowerBound { return x.lowerBound < y.lowerBound }
            if x.upperBound != y.upperBound { return x.upperBound < y.upperBound }
            return a < b
        }
        let entries = order.map { found[$0] }

        var end = 0
        var previous: SafeTensorsEntry?
        for e in entries {
            let begin = e.dataOffsets.lowerBound
            if begin > end {
                throw .hole(path: path, name: e.name, offset: dataStart + end, gap: begin - end)
            }
            if begin < end, let previous {
                throw .overlap(path: path, name: e.name, other: previous.name, offset: e.fileRange.lowerBound)
            }
            end = e.dataOffsets.upperBound
            previous = e
        }
        if end != context.dataSize {
            throw .trailingBytes(path: path, dataEnd: dataStart + end, fileSize: fileSize)
        }
        return ParsedHeader(entries: entries, metadata: metadata ?? [:])
    }

    private static func parseMetadata(
        _ value: JSON, path: String, offset: Int
    ) throws(SafeTensorsError) -> [String: String] {
        guard case .object(let members) = value else {
            throw .invalidMetadata(path: path, key: metadataKey, offset: offset,
                                   detail: "must be an object of strings, not \(value.kindDescription)")
        }
        var out: [String: String] = [:]
        for m in members {
            guard case .string(let s) = m.value else {
                throw .invalidMetadata(path: path, key: m.key, offset: 8 + m.offset,
                                       detail: "the value is \(m.value.kindDescription), but metadata values must be strings")
            }
            guard out.updateValue(s, forKey: m.key) == nil else {
                throw .invalidMetadata(path: path, key: m.key, offset: 8 + m.offset, detail: "the key appears twice")
            }
        }
        return out
    }
}

/// Checks one tensor entry on its own (rules 3 to 5).
private struct EntryContext {
    let path: String
    let dataStart: Int
    let dataSize: Int

    func entry(named name: String, value: JSON, offset: Int) throws(SafeTensorsError) -> SafeTensorsEntry {
        func invalid(_ detail: String) -> SafeTensorsError {
            .invalidEntry(path: path, name: name, offset: offset, detail: detail)
        }
        guard case .object(let fields) = value else {
            throw invalid("the entry must be an object with dtype, shape and data_offsets, not \(value.kindDescription)")
        }
        var dtypeValue: JSON?, shapeValue: JSON?, offsetsValue: JSON?
        for f in fields {
            // Unknown fields are ignored, as the reference reader does; known ones must be unique.
            switch f.key {
            case "dtype":
                guard dtypeValue == nil else { throw invalid("\"dtype\" is given twice") }
                dtypeValue = f.value
            case "shape":
                guard shapeValue == nil else { throw invalid("\"shape\" is given twice") }
                shapeValue = f.value
            case "data_offsets":
                guard offsetsValue == nil else { throw invalid("\"data_offsets\" is given twice") }
                offsetsValue = f.value
            default:
                continue
            }
        }

        guard let dtypeValue else { throw invalid("the entry has no \"dtype\"") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw invalid("\"dtype\" must be a string such as \"F32\", not \(dtypeValue.kindDescription)")
        }
        guard let dtype = DType(safetensorsName: dtypeName) else {
            throw .unknownDType(path: path, name: name, offset: offset, dtype: dtypeName)
        }

        guard let shapeValue else { throw invalid("the entry has no \"shape\"") }
        guard case .array(let dims) = shapeValue else {
            throw invalid("\"shape\" must be an array of non-negative integers, not \(shapeValue.kindDescription)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, d) in dims.enumerated() {
            guard case .number(let literal) = d else {
                throw invalid("dimension \(i) of the shape is \(d.kindDescription), not a non-negative integer")
            }
            switch JSONInteger(literal: literal) {
            case .value(let v): shape.append(v)
            case .negative: throw invalid("dimension \(i) of the shape is \(literal): sizes must be non-negative")
            case .notInteger: throw invalid("dimension \(i) of the shape is \(literal), not a whole number")
            case .tooLarge: throw invalid("dimension \(i) of the shape is \(literal), too large to address")
            }
        }

        guard let offsetsValue else { throw invalid("the entry has no \"data_offsets\"") }
        guard case .array(let pair) = offsetsValue, pair.count == 2 else {
            throw invalid("\"data_offsets\" must be two non-negative integers [begin, end]")
        }
        var bounds: [Int] = []
        for (i, v) in pair.enumerated() {
            let which = i == 0 ? "begin" : "end"
            guard case .number(let literal) = v else {
                throw invalid("data_offsets \(which) is \(v.kindDescription), not a non-negative integer")
            }
            switch JSONInteger(literal: literal) {
            case .value(let x): bounds.append(x)
            case .negative: throw invalid("data_offsets \(which) is \(literal): offsets must be non-negative")
            case .notInteger: throw invalid("data_offsets \(which) is \(literal), not a whole number")
            case .tooLarge: throw invalid("data_offsets \(which) is \(literal), too large to address")
            }
        }
        let begin = bounds[0], end = bounds[1]
        guard begin <= end else { throw .invalidOffsets(path: path, name: name, begin: begin, end: end) }

        var expected: Int?
        if let n = ShapeMath.elementCount(shape) {
            let (bytes, overflow) = n.multipliedReportingOverflow(by: dtype.byteWidth)
            expected = overflow ? nil : bytes
        }
        guard expected == end - begin else {
            throw .sizeMismatch(path: path, name: name, dtype: dtype, shape: shape, expected: expected,
                                actual: end - begin, offset: absolute(begin))
        }
        guard end <= dataSize else {
            throw .dataPastEnd(path: path, name: name, offset: absolute(begin), byteCount: end - begin,
                               fileSize: dataStart + dataSize)
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end,
                                fileRange: (dataStart + begin)..<(dataStart + end))
    }

    /// `dataStart + relative`, saturating so that an absurd offset in a hostile header still
    /// prints as a large number instead of trapping.
    private func absolute(_ relative: Int) -> Int {
        let (v, overflow) = dataStart.addingReportingOverflow(relative)
        return overflow ? Int.max : v
    }
}
