#if canImport(Glibc)
import Glibc
#endif
import DLKit
import Foundation

// dlserve MODEL... — answers JSON-lines inference requests on stdin, one answer line per request
// on stdout, in order. Diagnostics go to stderr. See formats/serve-protocol.md.

let usage = """
    usage: dlserve MODEL... [--max-line-bytes N]

    Reads one JSON request per line on standard input and writes one JSON answer per line on
    standard output (Open Inference Protocol v2 bodies; see formats/serve-protocol.md).

    Example:
      echo '{"id":"1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[0.5,1]}]}' | dlserve model.onnx
    """

func log(_ s: String) { FileHandle.standardError.write(Data("dlserve: \(s)\n".utf8)) }

var paths: [String] = []
var maxLineBytes = 64 << 20
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "-h", "--help":
        print(usage)
        exit(0)
    case "--max-line-bytes":
        guard let v = args.popFirst().flatMap({ Int($0) }), v > 0 else {
            log("--max-line-bytes needs a positive number")
            exit(2)
        }
        maxLineBytes = v
    default:
        if a.hasPrefix("-") {
            log("unknown option '\(a)'\n\(usage)")
            exit(2)
        }
        paths.append(a)
    }
}
guard !paths.isEmpty else {
    log("no model given\n\(usage)")
    exit(2)
}

var models: [Model] = []
for p in paths {
    do {
        let m = try Model(contentsOf: URL(fileURLWithPath: p))
        guard !models.contains(where: { $0.name == m.name }) else {
            log("two models are named '\(m.name)'; rename one file")
            exit(1)
        }
        let io = { (vs: [ValueInfo]) in vs.map { "\($0.name): \($0.type?.description ?? "?")" }.joined(separator: ", ") }
        log("loaded '\(m.name)' from \(p) (inputs \(io(m.inputs)); outputs \(io(m.outputs)))")
        models.append(m)
    } catch {
        log("\(error)")
        exit(1)
    }
}

/// Writes one answer line to stdout; false when stdout is gone (the reader left).
func emit(_ answer: String) -> Bool {
    var bytes = Array(answer.utf8)
    bytes.append(UInt8(ascii: "\n"))
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + done, bytes.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        done += n
    }
    return true
}

signal(SIGPIPE, SIG_IGN)
let server = InferenceServer(models: models)
while let line = readLine(strippingNewline: true) {
    if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
    let answer: String
    if line.utf8.count > maxLineBytes {
        answer = JSON.object([("id", .null), ("error", .string("the request line has \(line.utf8.count) bytes, over the limit of \(maxLineBytes) (--max-line-bytes)"))]).serialized()
    } else {
        answer = server.handle(line: line)
    }
    guard emit(answer) else {
        log("standard output closed; stopping")
        exit(1)
    }
}
exit(0)
