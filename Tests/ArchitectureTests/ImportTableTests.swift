import Foundation
import Testing

/// ARCHITECTURE.md's import table is the rule: every `import` of one of our targets in
/// `Sources/<target>/` must be allowed by that target's row, directly or through the rows it names
/// (a layer may use what the layers below it use). A row whose last cell says "all" is a façade.
@Suite struct ImportTableTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    struct Table {
        var allowed: [String: Set<String>] = [:]
        var facades: Set<String> = []
        var order: [String] = []

        /// What `target` may import: its row and, transitively, the rows that row names.
        func closure(of target: String) -> Set<String> {
            if facades.contains(target), let i = order.firstIndex(of: target) { return Set(order[..<i]) }
            var seen: Set<String> = [], stack = Array(allowed[target] ?? [])
            while let t = stack.popLast() {
                guard seen.insert(t).inserted else { continue }
                if facades.contains(t) { return Set(order).subtracting([target]) }
                stack += allowed[t] ?? []
            }
            return seen
        }
    }

    static func backticked(_ cell: Substring) -> [String] {
        cell.split(separator: "`", omittingEmptySubsequences: false).enumerated()
            .filter { $0.offset % 2 == 1 }.map { String($0.element) }
            .filter { $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } }
    }

    static func table() throws -> Table {
        let text = try String(contentsOf: root.appendingPathComponent("ARCHITECTURE.md"), encoding: .utf8)
        var table = Table()
        var inTable = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { inTable = line.contains("may import") ; continue }
            guard inTable, line.hasPrefix("|"), !line.hasPrefix("|---") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
            guard cells.count >= 3, let first = cells.first, let last = cells.last else { continue }
            for target in backticked(first) {
                table.order.append(target)
                if last.lowercased().contains("all of the above") { table.facades.insert(target) }
                table.allowed[target] = Set(backticked(last))
            }
        }
        return table
    }

    static func ourTargets() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Sources").path)
            .filter { !$0.hasPrefix(".") }.sorted()
    }

    /// (file, line number, imported module) for every import line of a target's Swift files.
    static func imports(of target: String) throws -> [(String, Int, String)] {
        let dir = root.appendingPathComponent("Sources").appendingPathComponent(target)
        guard let walker = FileManager.default.enumerator(atPath: dir.path) else { return [] }
        var out: [(String, Int, String)] = []
        for case let rel as String in walker where rel.hasSuffix(".swift") {
            let text = try String(contentsOf: dir.appendingPathComponent(rel), encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })[...]
                while let w = words.first, w.hasPrefix("@") || ["public", "package", "internal", "private", "fileprivate"].contains(w) {
                    words = words.dropFirst()
                }
                guard words.first == "import", words.count >= 2, let module = words.last else { continue }
                out.append(("Sources/\(target)/\(rel)", n + 1, String(module)))
            }
        }
        return out
    }

    @Test func everyTargetHasARow() throws {
        let table = try Self.table()
        let missing = try Self.ourTargets().filter { table.allowed[$0] == nil }
        #expect(missing.isEmpty, "targets without a row in ARCHITECTURE.md: \(missing)")
    }

    @Test func everyImportIsAllowedByTheTable() throws {
        let table = try Self.table()
        let ours = Set(try Self.ourTargets())
        var broken: [String] = []
        for target in ours.sorted() {
            let ok = table.closure(of: target)
            for (file, line, module) in try Self.imports(of: target)
            where ours.contains(module) && module != target && !ok.contains(module) {
                broken.append("\(file):\(line): \(target) imports \(module)")
            }
        }
        #expect(broken.isEmpty, "imports the table in ARCHITECTURE.md does not allow:\n\(broken.joined(separator: "\n"))")
    }

    /// The check itself must be able to fail: a format reaching into the runtime is refused.
    @Test func tableRefusesAFormatImportingTheRuntime() throws {
        let table = try Self.table()
        #expect(!table.closure(of: "DLONNX").contains("DLRuntime"))
        #expect(!table.closure(of: "DLGraph").contains("DLKernels"))
        #expect(table.closure(of: "DLRuntime").contains("DLTensor"))
        #expect(table.closure(of: "dlserve").contains("DLONNX"))
    }
}
