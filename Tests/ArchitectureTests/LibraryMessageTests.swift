import Foundation
import Testing

/// Library messages speak in library terms: a string literal in a library target (`Sources/DL*`)
/// never names a command-line flag (`--something`); the tools map the library's typed errors to
/// their flags (`dlconvert`'s `InputShapeOptions.describe` and `flag(_:)`). The one exception is
/// the flag by which DLKeras starts its own helper process.
@Suite struct LibraryMessageTests {
    static let allowed: Set<String> = ["--dlkit-read-hdf5"]

    /// Flags named inside string literals of `text`: (line number, flag). Comment lines are skipped.
    static func flags(in text: String) -> [(Int, String)] {
        var out: [(Int, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("//") { continue }
            // Inside a string literal: an odd number of quotes before the flag on that line.
            let chars = Array(line)
            var quotes = 0
            var i = 0
            while i < chars.count {
                if chars[i] == "\"" && (i == 0 || chars[i - 1] != "\\") { quotes += 1 }
                if quotes % 2 == 1, chars[i] == "-", i + 2 < chars.count, chars[i + 1] == "-", chars[i + 2].isLetter,
                   i == 0 || !(chars[i - 1].isLetter || chars[i - 1] == "-") {
                    var j = i + 2
                    while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "-" { j += 1 }
                    out.append((n + 1, String(chars[i..<j])))
                    i = j
                    continue
                }
                i += 1
            }
        }
        return out
    }

    @Test func noLibraryStringNamesAFlag() throws {
        let sources = ImportTableTests.root.appendingPathComponent("Sources")
        var found: [String] = []
        for target in try ImportTableTests.ourTargets() where target.hasPrefix("DL") {
            let dir = sources.appendingPathComponent(target)
            guard let walker = FileManager.default.enumerator(atPath: dir.path) else { continue }
            for case let rel as String in walker where rel.hasSuffix(".swift") {
                let text = try String(contentsOf: dir.appendingPathComponent(rel), encoding: .utf8)
                for (line, flag) in Self.flags(in: text) where !Self.allowed.contains(flag) {
                    found.append("Sources/\(target)/\(rel):\(line): \(flag)")
                }
            }
        }
        #expect(found.isEmpty, "library messages naming command-line flags:\n\(found.joined(separator: "\n"))")
    }

    /// The scan itself must be able to fail.
    @Test func theScanSeesAFlagInAMessage() {
        let flags = Self.flags(in: """
            throw .invalidArgument("--input-shape x=1 does not fit")
            // a comment naming --freeze is fine
            let n = a--b
            """)
        #expect(flags.map(\.1) == ["--input-shape"])
    }
}
