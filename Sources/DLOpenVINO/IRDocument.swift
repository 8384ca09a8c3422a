import DLTensor
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// One port of a layer: its id (unique within the layer), element precision, tensor names and dims.
public struct IRPort: Sendable {
    public var id: Int
    public var precision: String
    public var names: [String]
    /// -1 (or a range `a..b`) is a dimension known only at run time: nil here.
    public var dims: [Int?]
}

/// One `<layer>` of the `<net>`.
public struct IRLayer: Sendable {
    public var id: Int
    public var name: String
    public var type: String
    /// `opset1` ... `opset15` (or an extension's name).
    public var version: String
    /// The attributes of its `<data>` element.
    public var data: [String: String]
    public var inputs: [IRPort]
    public var outputs: [IRPort]

    /// The name used in messages: `'name' (Type, id N)`.
    public var displayName: String { "'\(name)' (\(type), id \(id))" }
}

/// One `<edge>`: output port `fromPort` of layer `fromLayer` feeds input port `toPort` of `toLayer`.
public struct IREdge: Sendable, Hashable {
    public var fromLayer, fromPort, toLayer, toPort: Int
}

/// The parsed `<net>` of an IR `.xml`: what the file says, before any translation.
public struct IRDocument: Sendable {
    public var name: String
    /// The IR version (10 or 11).
    public var version: Int
    public var layers: [IRLayer]
    public var edges: [IREdge]

    /// Limits a file must stay within (the XML parser stops as soon as one is passed).
    public struct Limits: Sendable {
        public var maxBytes = 1 << 30
        public var maxDepth = 32
        public var maxLayers = 1_000_000
        public var maxRank = 64
        public init() {}
    }

    /// Parses IR XML. DOCTYPE declarations (and with them every entity definition) are refused
    /// before libxml2 sees the bytes, so no entity is ever expanded; nesting and size are bounded.
    /// - Throws: `OpenVINOError.invalidXML` / `.invalidIR` naming `path`.
    public init(xml: UnsafeRawBufferPointer, path: String, limits: Limits = Limits()) throws(OpenVINOError) {
        guard xml.count <= limits.maxBytes else {
            throw .invalidXML(path: path, reason: "\(xml.count) bytes, over the limit of \(limits.maxBytes)")
        }
        // FoundationXML traps on element or attribute names that are not UTF-8 (found by
        // fuzz-openvino), and XML forbids NUL: both are refused before the parser runs.
        if let nul = xml.firstIndex(of: 0) {
            throw .invalidXML(path: path, reason: "a NUL byte at offset \(nul)")
        }
        if String(validating: xml, as: UTF8.self) == nil {
            throw .invalidXML(path: path, reason: "not UTF-8 text")
        }
        if let offset = Self.markupDeclaration(in: xml) {
            throw .invalidXML(path: path, reason: "a DOCTYPE or entity declaration at byte \(offset) (refused: IR never needs one)")
        }
        let delegate = IRParserDelegate(path: path, limits: limits)
        let parser = XMLParser(data: Data(xml))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        parser.delegate = delegate
        let ok = parser.parse()
        if let failure = delegate.failure { throw failure }
        guard ok else {
            let e = parser.parserError.map { ($0 as NSError).localizedDescription } ?? "unknown error"
            throw .invalidXML(path: path, reason: "line \(parser.lineNumber): \(e)")
        }
        guard delegate.sawNet else { throw .invalidIR(path: path, reason: "the root element is not <net>") }
        guard delegate.closedNet else { throw .invalidXML(path: path, reason: "the file ends before </net> (truncated?)") }
        name = delegate.netName
        guard let v = delegate.netVersion else { throw .invalidIR(path: path, reason: "<net> has no version") }
        guard v == 10 || v == 11 else { throw .invalidIR(path: path, reason: "IR version \(v); DLKit reads versions 10 and 11") }
        version = v
        layers = delegate.layers
        edges = delegate.edges
    }

    /// The offset of the first `<!` that opens neither a comment nor a CDATA section.
    static func markupDeclaration(in b: UnsafeRawBufferPointer) -> Int? {
        let comment = Array("--".utf8), cdata = Array("[CDATA[".utf8)
        var i = 0
        while i + 1 < b.count {
            if b[i] == UInt8(ascii: "<"), b[i + 1] == UInt8(ascii: "!") {
                let rest = b[(i + 2)...]
                if !rest.starts(with: comment), !rest.starts(with: cdata) { return i }
            }
            i += 1
        }
        return nil
    }

    /// Whether `bytes` look like IR XML: optional BOM, XML declaration and comments, then `<net`.
    public static func looksLikeIR(_ b: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
        let limit = min(b.count, 4096)
        while i < limit {
            let c = b[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1; continue }
            guard c == UInt8(ascii: "<"), i + 1 < limit else { return false }
            let rest = b[(i + 1)..<limit]
            // A DOCTYPE makes it look like IR too: the reader then refuses it by name.
            if rest.starts(with: "!DOCTYPE net".utf8) { return true }
            if rest.starts(with: "?".utf8) || rest.starts(with: "!--".utf8) {
                // Skip the declaration or comment to its closing '>'.
                guard let end = rest.firstIndex(of: UInt8(ascii: ">")) else { return false }
                i = end + 1
                continue
            }
            guard rest.starts(with: "net".utf8), i + 4 < limit else { return false }
            let after = b[i + 4]
            return after == 0x20 || after == 0x0A || after == 0x0D || after == 0x09 || after == UInt8(ascii: ">")
        }
        return false
    }
}

/// Collects `<net>`, `<layers>/<layer>` (with `<data>`, `<input>`/`<output>` ports and `<dim>`s)
/// and `<edges>/<edge>`; other elements (rt_info, meta_data, sub-graph bodies) are skipped whole.
final class IRParserDelegate: NSObject, XMLParserDelegate {
    let path: String
    let limits: IRDocument.Limits
    var failure: OpenVINOError?
    var sawNet = false
    var closedNet = false
    var netName = ""
    var netVersion: Int?
    var layers: [IRLayer] = []
    var edges: [IREdge] = []

    /// Element names from the root down to the current element.
    private var stack: [String] = []
    private var layer: IRLayer?
    private var port: IRPort?
    private var portIsInput = false
    private var text = ""

    init(path: String, limits: IRDocument.Limits) {
        self.path = path
        self.limits = limits
    }

    private func fail(_ parser: XMLParser, _ e: OpenVINOError) {
        if failure == nil { failure = e }
        parser.abortParsing()
    }

    private func int(_ parser: XMLParser, _ attrs: [String: String], _ key: String, in what: String) -> Int? {
        guard let s = attrs[key], let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
            fail(parser, .invalidIR(path: path, reason: "\(what) at line \(parser.lineNumber) has no integer '\(key)' (\(attrs[key] ?? "missing"))"))
            return nil
        }
        return v
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                qualifiedName: String?, attributes attrs: [String: String]) {
        guard failure == nil else { return }
        stack.append(name)
        guard stack.count <= limits.maxDepth else {
            fail(parser, .invalidXML(path: path, reason: "elements nested deeper than \(limits.maxDepth) at line \(parser.lineNumber)"))
            return
        }
        switch (stack.count, name) {
        case (1, "net"):
            sawNet = true
            netName = attrs["name"] ?? ""
            netVersion = attrs["version"].flatMap { Int($0) }
        case (1, _):
            fail(parser, .invalidIR(path: path, reason: "the root element is <\(name)>, not <net>"))
        case (3, "layer") where stack[1] == "layers":
            guard layers.count < limits.maxLayers else {
                fail(parser, .invalidIR(path: path, reason: "more than \(limits.maxLayers) layers"))
                return
            }
            guard let id = int(parser, attrs, "id", in: "<layer>") else { return }
            layer = IRLayer(id: id, name: attrs["name"] ?? "", type: attrs["type"] ?? "", version: attrs["version"] ?? "",
                            data: [:], inputs: [], outputs: [])
        case (4, "data") where layer != nil:
            layer?.data = attrs
        case (5, "port") where layer != nil && (stack[3] == "input" || stack[3] == "output"):
            guard let id = int(parser, attrs, "id", in: "<port>") else { return }
            let names = Self.splitNames(attrs["names"] ?? "")
            port = IRPort(id: id, precision: attrs["precision"] ?? "", names: names, dims: [])
            portIsInput = stack[3] == "input"
        case (6, "dim") where port != nil:
            text = ""
        case (3, "edge") where stack[1] == "edges":
            guard let fl = int(parser, attrs, "from-layer", in: "<edge>"), let fp = int(parser, attrs, "from-port", in: "<edge>"),
                  let tl = int(parser, attrs, "to-layer", in: "<edge>"), let tp = int(parser, attrs, "to-port", in: "<edge>") else { return }
            edges.append(IREdge(fromLayer: fl, fromPort: fp, toLayer: tl, toPort: tp))
        default:
            break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if port != nil, stack.count == 6, stack.last == "dim" {
            guard text.utf8.count < 64 else {
                fail(parser, .invalidIR(path: path, reason: "a <dim> longer than 64 characters at line \(parser.lineNumber)"))
                return
            }
            text += string
        }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        guard failure == nil else { return }
        defer { stack.removeLast() }
        switch (stack.count, name) {
        case (6, "dim") where port != nil:
            guard let d = IRShape.dim(text) else {
                fail(parser, .invalidLayer(path: path, layer: layer?.displayName ?? "?", reason: "port \(port?.id ?? -1) has dim '\(text)', not a size, -1 or a range"))
                return
            }
            guard (port?.dims.count ?? 0) < limits.maxRank else {
                fail(parser, .invalidLayer(path: path, layer: layer?.displayName ?? "?", reason: "port \(port?.id ?? -1) has more than \(limits.maxRank) dims"))
                return
            }
            port?.dims.append(d)
        case (5, "port"):
            if let p = port {
                if portIsInput { layer?.inputs.append(p) } else { layer?.outputs.append(p) }
            }
            port = nil
        case (3, "layer"):
            if let l = layer { layers.append(l) }
            layer = nil
        case (1, "net"):
            closedNet = true
        default:
            break
        }
    }

    /// Splits a `names` attribute: comma-separated, `\,` an escaped comma, spaces around trimmed.
    static func splitNames(_ s: String) -> [String] {
        guard !s.isEmpty else { return [] }
        var out: [String] = [], cur = ""
        var escaped = false
        for c in s {
            if escaped { cur.append(c); escaped = false; continue }
            if c == "\\" { escaped = true; continue }
            if c == "," { out.append(cur.trimmingCharacters(in: .whitespaces)); cur = ""; continue }
            cur.append(c)
        }
        out.append(cur.trimmingCharacters(in: .whitespaces))
        return out.filter { !$0.isEmpty }
    }
}

/// Parsing of the comma-separated lists IR attributes hold (`shape="?,3,1..10,224"`, `strides="1, 1"`).
public enum IRShape {
    /// One dimension: a size, `-1` or `?` (unknown: nil), or a range `a..b` / `..b` / `a..` (nil).
    /// Returns `.some(nil)` for dynamic, nil when the text is not a dimension.
    static func dim(_ text: String) -> Int?? {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if t == "?" || t == "-1" { return .some(nil) }
        if let r = t.range(of: "..") {
            let lo = t[..<r.lowerBound], hi = t[r.upperBound...]
            guard lo.isEmpty || Int(lo) != nil, hi.isEmpty || Int(hi) != nil else { return nil }
            if let a = Int(lo), let b = Int(hi), a == b, a >= 0 { return .some(a) }
            return .some(nil)
        }
        guard let v = Int(t), v >= 0 else { return nil }
        return .some(v)
    }

    /// A shape attribute; nil when malformed. An empty string is a scalar.
    static func dims(_ text: String) -> [Int?]? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return [] }
        if t == "..." { return nil }  // dynamic rank
        var out: [Int?] = []
        for part in t.split(separator: ",", omittingEmptySubsequences: false) {
            guard let d = dim(String(part)) else { return nil }
            out.append(d)
        }
        return out
    }

    /// A list of integers (`strides`, `pads_begin`, masks); nil when malformed.
    static func ints(_ text: String) -> [Int]? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return [] }
        var out: [Int] = []
        for part in t.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)) else { return nil }
            out.append(v)
        }
        return out
    }

    /// The values of an integer tensor, exactly (64-bit ones are not routed through Double,
    /// where Int64.max would round past Int.max); nil for other types.
    public static func integers(_ t: Tensor) -> [Int]? {
        switch t.dtype {
        case .int64: return t.scalars(as: Int64.self).map { Int($0) }
        case .uint64: return t.scalars(as: UInt64.self).map { $0 > UInt64(Int.max) ? Int.max : Int($0) }
        case let d where d.isInteger: return t.doubles().map { Int($0) }
        default: return nil
        }
    }

    /// The sizes when every dim is known.
    static func concrete(_ dims: [Int?]) -> [Int]? {
        var out: [Int] = []
        for d in dims {
            guard let d else { return nil }
            out.append(d)
        }
        return out
    }

    static func strings(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
