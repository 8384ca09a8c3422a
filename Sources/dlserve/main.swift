#if canImport(Glibc)
import Glibc
#endif
import DLKit
import DLServe
import DLSupport
import Foundation

// dlserve MODEL... — answers JSON-lines inference requests on stdin, one answer line per request
// on stdout, in order. Diagnostics go to stderr. See formats/serve-protocol.md.

let usage = """
    usage: dlserve MODEL... [--threads N] [--max-batch N] [--max-line-bytes N] [--max-binary-bytes N]
                   [--max-elements N]
           dlserve MODEL... --http PORT [--host ADDRESS] [--threads N] [--max-batch N]
                   [--max-body-bytes N] [--max-header-bytes N] [--idle-timeout S] [--max-connections N]

    Reads one JSON request per line on standard input and writes one JSON answer per line on
    standard output, in request order (Open Inference Protocol v2 bodies; see
    formats/serve-protocol.md). Logs go to standard error. Ends at end of input or on
    SIGTERM/SIGINT, after answering every request already read; exit code 0.

    With --http, serves the KServe/Triton v2 REST protocol instead (/v2/health/live,
    /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready, POST /v2/models/NAME/infer with JSON
    or binary tensor data, GET /metrics). SIGTERM/SIGINT stop accepting, answer the requests in
    flight, and exit 0.

    MODEL               an ONNX model, DLKit checkpoint, Keras .h5 or .keras, .tflite, a TensorFlow SavedModel folder,
                        a TF.js model.json or a Hugging Face folder (with tokenizer.json: BYTES
                        "text" inputs; decoders: "generate" requests); requests name it by
                        its file name without extension ("model_name"), optional when one model
                        is served
    --graph FILE        the model the weights file just before it belongs to (e.g.
                        tuned.weights.h5 --graph model.keras)
    --threads N         threads running models (default 1); parsing and answering run on
                        threads of their own alongside
    --max-batch N       run up to N queued requests to one model as a single batch when they
                        differ only in the batch dimension (default 1: off)
    --max-line-bytes N  longest request line; longer lines are skipped and answered with an
                        error (default 67108864, 64 MiB)
    --max-binary-bytes N  most bytes of binary tensor data after one request line; a request
                        declaring more is skipped and answered with an error (default 268435456)
    --max-elements N    most elements in one request tensor (default 268435456)
    --http PORT         serve HTTP on PORT (0: any free port; the log says which)
    --host ADDRESS      address to listen on (default 127.0.0.1, loopback only; 0.0.0.0 for all)
    --max-body-bytes N  largest request body, else 413 (default 67108864)
    --max-header-bytes N  largest request header block, else 400 (default 16384)
    --idle-timeout S    close a connection idle for S seconds (default 60)
    --max-connections N  most open connections; more are closed at once (default 1024)

    Examples:
      echo '{"id":"1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[0.5,1]}]}' | dlserve model.onnx
      dlserve mlp.onnx cnn.onnx --threads 2 --max-batch 8 < requests.jsonl > answers.jsonl
    """

// Keras (HDF5) models are read in a child process of this executable (KerasIsolation): libhdf5
// may crash on a hostile file, and then only the child dies.
CommandLineTool.setUp()

func log(_ s: String) { FileHandle.standardError.write(Data("dlserve: \(s)\n".utf8)) }

func positive(_ name: String, _ value: String?) -> Int {
    guard let v = value.flatMap({ Int($0) }), v > 0 else {
        log("\(name) needs a positive whole number")
        exit(2)
    }
    return v
}

var paths: [String] = []
var graphs: [Int: String] = [:]
var maxLineBytes = 64 << 20
var maxBinaryBytes = 256 << 20
var threads = 1
var maxBatch = 1
var limits = ServeLimits()
var httpPort: Int? = nil
var httpHost = "127.0.0.1"
var httpLimits = HTTPLimits()
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "-h", "--help":
        print(usage)
        exit(0)
    case "--max-line-bytes": maxLineBytes = positive(a, args.popFirst())
    case "--max-binary-bytes": maxBinaryBytes = positive(a, args.popFirst())
    case "--threads": threads = positive(a, args.popFirst())
    case "--max-batch": maxBatch = positive(a, args.popFirst())
    case "--max-elements": limits.maxElements = positive(a, args.popFirst())
    case "--http":
        guard let v = args.popFirst().flatMap({ Int($0) }), (0...65535).contains(v) else {
            log("--http needs a port number (0 to 65535)")
            exit(2)
        }
        httpPort = v
    case "--host":
        guard let h = args.popFirst(), !h.isEmpty else {
            log("--host needs an address")
            exit(2)
        }
        httpHost = h
    case "--max-body-bytes": httpLimits.maxBodyBytes = positive(a, args.popFirst())
    case "--max-header-bytes": httpLimits.maxHeaderBytes = positive(a, args.popFirst())
    case "--idle-timeout": httpLimits.idleSeconds = positive(a, args.popFirst())
    case "--max-connections": httpLimits.maxConnections = positive(a, args.popFirst())
    case "--graph":
        guard let g = args.popFirst(), !paths.isEmpty else {
            log("--graph needs a model file and must follow the weights file it belongs to")
            exit(2)
        }
        graphs[paths.count - 1] = g
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

// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
// large request buffers come from the heap and stay resident once freed. A fixed threshold keeps
// every block of 1 MiB or more in its own mapping, returned to the system when freed, so memory
// goes back to where it was after a huge request.
// (mallopt is not in Swift's Glibc module; look it up. M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3
// in glibc's malloc.h.)
#if canImport(Glibc)
if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let mallopt = unsafeBitCast(sym, to: Mallopt.self)
    _ = mallopt(-3, 1 << 20)
    _ = mallopt(-1, 4 << 20)
}
#endif

// Signals first: one that arrives while models load is answered like any other (nothing read
// yet, so exit 0 as soon as reading would start).
signal(SIGPIPE, SIG_IGN)
let stopFD = SignalPipe.install([SIGTERM, SIGINT])
if stopFD == nil { log("could not set up signal handling; SIGTERM will end the server at once") }

var models: [Model] = []
var texts: [TextSupport?] = []
for (index, p) in paths.enumerated() {
    do {
        let m = try graphs[index].map { try Model(contentsOf: URL(fileURLWithPath: p), graph: URL(fileURLWithPath: $0)) }
            ?? Model(contentsOf: URL(fileURLWithPath: p), options: RuntimeOptions(environment: ProcessInfo.processInfo.environment))
        if let other = models.firstIndex(where: { $0.name == m.name }) {
            log("\(p): a model named '\(m.name)' is already loaded from \(paths[other]); models are named by file name without extension, so rename one file")
            exit(1)
        }
        let io = { (vs: [ValueInfo]) in vs.map { "\($0.name): \($0.type?.description ?? "?")" }.joined(separator: ", ") }
        log("loaded '\(m.name)' from \(p) (inputs \(io(m.inputs)); outputs \(io(m.outputs)))")
        models.append(m)
        let text = graphs[index] == nil
            ? try TextSupport.load(path: p, options: RuntimeOptions(environment: ProcessInfo.processInfo.environment)) : nil
        if let text {
            log("'\(m.name)': " + [text.feeds.map { _ in "BYTES text inputs tokenized by tokenizer.json" },
                                    text.generator.map { _ in "generate requests" }].compactMap { $0 }.joined(separator: ", "))
        }
        texts.append(text)
    } catch {
        log("\(error)")
        exit(1)
    }
}

let server: InferenceServer
do { server = try InferenceServer(models: models, limits: limits, text: texts) } catch {
    log("\(error)")
    exit(1)
}
if maxBatch > 1 {
    for (m, symbol) in zip(models, server.batchSymbols) {
        log(symbol.map { "'\(m.name)': dynamic batching over dim 0 ('\($0)'), up to \(maxBatch) requests" }
            ?? "'\(m.name)': no dynamic batching (needs dim 0 of every input and output to be one symbolic dim)")
    }
}

if let port = httpPort {
    // One descriptor per connection: take the hard limit of open files.
    var files = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
        files.rlim_cur = files.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
    }
    let http = HTTPServer(server: server, limits: httpLimits, threads: threads, maxBatch: maxBatch,
                          eventLoops: min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)))
    let bound: Int
    do { bound = try http.start(host: httpHost, port: port) } catch {
        log("cannot listen on \(httpHost):\(port): \(error)")
        exit(1)
    }
    log("listening on http://\(httpHost.contains(":") ? "[\(httpHost)]" : httpHost):\(bound) (\(models.count) model\(models.count == 1 ? "" : "s"), \(threads) thread\(threads == 1 ? "" : "s"), max batch \(maxBatch))")
    if let stopFD {
        var fds = [pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while poll(&fds, 1, -1) < 0 && errno == EINTR {}
        let sig = SignalPipe.received(on: stopFD) ?? SIGTERM
        log("received \(sig == SIGINT ? "SIGINT" : "SIGTERM"); answering the requests in flight, then exiting")
    } else {
        while true { pause() }
    }
    let left = http.shutdown()
    if left > 0 { log("\(left) requests were still unanswered after 30 s; closed") }
    log("stopped")
    exit(left == 0 ? 0 : 1)
}

/// Writes all of `bytes` to stdout; false when stdout is gone (the reader left).
@Sendable func writeOut(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard var p = bytes.baseAddress else { return true }
    var left = bytes.count
    while left > 0 {
        let n = write(STDOUT_FILENO, p, left)
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        p += n
        left -= n
    }
    return true
}


let pipeline = ServePipeline(
    server: server, options: .init(threads: threads, maxBatch: maxBatch),
    output: writeOut, log: { log($0) })
log("ready: \(models.count) model\(models.count == 1 ? "" : "s"), \(threads) thread\(threads == 1 ? "" : "s"), max batch \(maxBatch), max line \(maxLineBytes) bytes")

let reader = LineReader(fd: STDIN_FILENO, stopFD: stopFD ?? -1, maxLineBytes: maxLineBytes)
var readFailed = false
switch pipeline.read(from: reader, maxBinaryBytes: maxBinaryBytes) {
case .end, .outputClosed: break
case .stopped:
    let sig = stopFD.flatMap(SignalPipe.received(on:)) ?? SIGTERM
    log("received \(sig == SIGINT ? "SIGINT" : "SIGTERM"); answering the requests already read, then exiting")
case .failed(let message):
    log(message)
    readFailed = true
}
let (counts, complete) = pipeline.finish()
guard complete else {
    log("standard output closed; stopped after \(counts.answered) of \(counts.requests) answers")
    exit(1)
}
log("answered \(counts.answered) requests" + (counts.batches > 0 ? " (\(counts.batchedRequests) in \(counts.batches) dynamic batches)" : ""))
exit(readFailed ? 1 : 0)
