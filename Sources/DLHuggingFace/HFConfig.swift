import DLSupport
import DLTensor
import Foundation

/// Reads a JSON file of a folder (config.json, tokenizer.json, an index) into a parsed value,
/// with a size bound and the file named in every error.
func readJSONFile(_ path: String, maxBytes: Int = 200_000_000) throws(HFError) -> JSON {
    let file: MappedFile
    do { file = try MappedFile(path: path) } catch let e as MappedFileError { throw .cannotRead(path: path, reason: e.reason) } catch {
        throw .cannotRead(path: path, reason: "\(error)")
    }
    guard file.byteCount <= maxBytes else { throw .invalid(path: path, reason: "\(file.byteCount) bytes, more than the \(maxBytes) allowed") }
    return try parseJSON(file.bytes, path: path)
}

func parseJSON(_ bytes: UnsafeRawBufferPointer, path: String) throws(HFError) -> JSON {
    do { return try JSONParser.parse(bytes) } catch { throw .invalid(path: path, reason: "not valid JSON: \(error)") }
}

/// The fields of a transformers `config.json` DLKit reads, with transformers' defaults per
/// architecture applied by the accessors' callers.
public struct HFConfig: Sendable {
    public let path: String
    package let json: JSON
    public let modelType: String

    public init(path: String) throws(HFError) {
        try self.init(json: try readJSONFile(path, maxBytes: 10_000_000), path: path)
    }

    package init(json: JSON, path: String) throws(HFError) {
        self.path = path
        self.json = json
        guard case .object = json else { throw .invalid(path: path, reason: "expected an object at the top, found \(json.kindDescription)") }
        guard let t = json["model_type"] else { throw .invalid(path: path, reason: "no \"model_type\"") }
        guard let s = t.stringValue else { throw .invalid(path: path, reason: "\"model_type\" is \(t.kindDescription), expected a string") }
        modelType = s
    }

    /// A positive integer field; `names` are tried in order (configs name the same size differently).
    func int(_ names: String..., default value: Int? = nil, min: Int = 1, max: Int = 1 << 24) throws(HFError) -> Int {
        for n in names {
            guard let v = json[n], !v.isNull else { continue }
            guard let i = v.intValue else { throw .invalid(path: path, reason: "\"\(n)\" is \(v.kindDescription), expected an integer") }
            guard i >= min, i <= max else { throw .invalid(path: path, reason: "\"\(n)\" is \(i), expected \(min)...\(max)") }
            return i
        }
        if let value { return value }
        throw .invalid(path: path, reason: "no \"\(names[0])\"")
    }

    func double(_ name: String, default value: Double) throws(HFError) -> Double {
        guard let v = json[name], !v.isNull else { return value }
        guard let d = v.doubleValue, d.isFinite else { throw .invalid(path: path, reason: "\"\(name)\" is \(v.kindDescription), expected a finite number") }
        return d
    }

    func string(_ name: String, default value: String) throws(HFError) -> String {
        guard let v = json[name], !v.isNull else { return value }
        guard let s = v.stringValue else { throw .invalid(path: path, reason: "\"\(name)\" is \(v.kindDescription), expected a string") }
        return s
    }

    func bool(_ name: String, default value: Bool) throws(HFError) -> Bool {
        guard let v = json[name], !v.isNull else { return value }
        guard let b = v.boolValue else { throw .invalid(path: path, reason: "\"\(name)\" is \(v.kindDescription), expected true or false") }
        return b
    }

    /// An optional integer token id (bos/eos/pad); a list takes its first element.
    func tokenId(_ name: String) -> Int? {
        guard let v = json[name] else { return nil }
        if let i = v.intValue { return i }
        return v.arrayValue?.first?.intValue
    }
}
