import DLKernels
import DLSupport
import DLTensor
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Limits of the HTTP server, each answered without holding more than it allows.
public struct HTTPLimits: Sendable {
    /// Largest request body; a larger `Content-Length` (or body) is answered 413 and the
    /// connection closed.
    public var maxBodyBytes: Int
    /// Largest total size of a request's header fields (names and values); larger is answered 400.
    public var maxHeaderBytes: Int
    /// A connection with no request in progress and no traffic for this long is closed (checked
    /// this long after the last bytes received, so at the latest twice this long after an answer).
    public var idleSeconds: Int
    /// Most open connections; one accepted beyond it is closed at once.
    public var maxConnections: Int

    public init(maxBodyBytes: Int = 64 << 20, maxHeaderBytes: Int = 16 << 10, idleSeconds: Int = 60, maxConnections: Int = 1024) {
        self.maxBodyBytes = max(1, maxBodyBytes)
        self.maxHeaderBytes = max(1024, maxHeaderBytes)
        self.idleSeconds = max(1, idleSeconds)
        self.maxConnections = max(1, maxConnections)
    }
}

/// `InferenceServer` over HTTP/1.1, speaking the KServe / Triton v2 REST protocol on SwiftNIO:
///
/// | request | answer |
/// |---|---|
/// | `GET /v2/health/live`, `GET /v2/health/ready` | `{"live": true}`, `{"ready": true}` (503 while draining) |
/// | `GET /v2` | server metadata, extensions `binary_tensor_data` |
/// | `GET /v2/models/{m}[/versions/1]` | model metadata |
/// | `GET /v2/models/{m}[/versions/1]/ready` | `{"name": m, "ready": true}` |
/// | `POST /v2/models/{m}[/versions/1]/infer` | inference: JSON body, or JSON + binary tensor data with `Inference-Header-Content-Length` |
/// | `POST /v2/models/{m}[/versions/1]/generate` | text generation (Hugging Face decoders): one JSON answer |
/// | `POST /v2/models/{m}[/versions/1]/generate_stream` | the same as server-sent events, `data: {...}` per new token |
/// | `GET /metrics` | Prometheus text |
///
/// Requests are parsed on the event loops and run on a `RunQueue` (with dynamic batching when
/// `maxBatch` > 1): an inference of a model whose recent runs took at most 2 ms on the event loop
/// itself when a runner is free and none waits, else on a runner thread and answered back on
/// their event loop. Errors are `{"error": "..."}` with a 4xx
/// status; the connection stays usable unless the body was too large.
public final class HTTPServer: @unchecked Sendable {
    public let server: InferenceServer
    public let limits: HTTPLimits
    public let metrics = ServeMetrics()
    let runQueue: RunQueue
    private let group: MultiThreadedEventLoopGroup
    private var channel: Channel?

    private let state = NSCondition()
    private var inFlight = 0
    private var connections = 0
    private var draining = false

    /// - Parameters:
    ///   - threads: runner threads (models run there; 0 runs each request on its event loop);
    ///     `eventLoops` threads parse and answer.
    public init(server: InferenceServer, limits: HTTPLimits = HTTPLimits(), threads: Int = 1, maxBatch: Int = 1, eventLoops: Int = 2) {
        self.server = server
        self.limits = limits
        // Parallelism comes from the runner threads; one BLAS thread each.
        GEMM.setThreadCount(1)
        let metrics = metrics
        runQueue = RunQueue(server: server, threads: threads, maxBatch: maxBatch, name: "dlserve-http-run") { metrics.batch(size: $0) }
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, eventLoops))
    }

    /// Binds to `host`:`port` (0 picks a free port) and starts accepting; returns the bound port.
    public func start(host: String, port: Int) throws -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // Reads grow up to 1 MB (NIO's default stops at 64 KB): a JSON batch is hundreds of
            // KB, and in 64 KB reads it took 3x as long over loopback. They still start at 2 KB,
            // so a thousand idle or small connections hold little.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 1 << 20))
        let ch = try bootstrap.bind(host: host, port: port).wait()
        channel = ch
        return ch.localAddress?.port ?? port
    }

    /// Adds the HTTP codec (with the header limits), the idle timer and the request handler to a
    /// new connection's pipeline; call on the channel's event loop.
    public func configure(_ channel: Channel) throws {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = 256
        // No outbound header validation: the handler writes only headers of its own making (fixed
        // names, numbers, fixed content types), and validating them cost about 4% of a small request.
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withErrorHandling: false, withOutboundHeaderValidation: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: decoderLimits)
        // A read timer, not an all-traffic one: that one hangs a promise on every write (three a
        // response); the handler checks the time since its last answer itself.
        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(Int64(limits.idleSeconds))))
        try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(http: self))
    }

    /// Stops accepting, waits up to `timeout` seconds for the requests in flight to be answered,
    /// then closes every connection and stops the threads.
    /// - Returns: the requests still unanswered when the wait ended (0: all drained).
    @discardableResult
    public func shutdown(timeout: Double = 30) -> Int {
        state.lock()
        draining = true
        state.unlock()
        try? channel?.close().wait()
        let deadline = Date().addingTimeInterval(timeout)
        state.lock()
        while inFlight > 0, state.wait(until: deadline) {}
        let left = inFlight
        state.unlock()
        // Jobs still running answer onto their event loops: finish them before the loops stop.
        runQueue.close()
        try? group.syncShutdownGracefully()
        return left
    }

    // MARK: - Bookkeeping (called from the handlers)

    /// Counts a new connection; false when over the limit (close it).
    func openConnection() -> Bool {
        state.lock()
        defer { state.unlock() }
        guard connections < limits.maxConnections else { return false }
        connections += 1
        metrics.connection(1)
        return true
    }

    func closeConnection() {
        state.lock()
        connections -= 1
        state.unlock()
        metrics.connection(-1)
    }

    func requestStarted() {
        state.lock()
        inFlight += 1
        state.unlock()
    }

    func requestFinished() {
        state.lock()
        inFlight -= 1
        if inFlight == 0 { state.broadcast() }
        state.unlock()
    }

    var isDraining: Bool {
        state.lock()
        defer { state.unlock() }
        return draining
    }

    var requestsInFlight: Int {
        state.lock()
        defer { state.unlock() }
        return inFlight
    }

    // MARK: - Routing

    /// A response: status, body, and the JSON header length when binary data follows it.
    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var body: [UInt8]
        var contentType = "application/json"
        var headerLength: Int? = nil
        var allow: String? = nil

        static func json(_ value: JSON, status: HTTPResponseStatus = .ok) -> Reply {
            Reply(status: status, body: Array(value.serialized().utf8))
        }

        static func error(_ message: String, status: HTTPResponseStatus) -> Reply {
            .json(.object([("error", .string(message))]), status: status)
        }
    }

    /// What a request path asks for.
    enum Route {
        case live, ready, serverMetadata, metrics
        case modelMetadata(Int), modelReady(Int), infer(Int), generate(Int), generateStream(Int)
    }

    /// Resolves `method` and `uri`: a route, or the error reply.
    func route(method: HTTPMethod, uri: String) -> Result<Route, ReplyError> {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        // Foundation's percent decoding took 4% of a small request's time: only when there is any.
        var parts = path.split(separator: "/").map { $0.utf8.contains(UInt8(ascii: "%")) ? String($0).removingPercentEncoding ?? String($0) : String($0) }
        func expect(_ m: HTTPMethod, _ route: Route) -> Result<Route, ReplyError> {
            guard method == m || (m == .GET && method == .HEAD) else {
                return .failure(ReplyError(Reply(status: .methodNotAllowed, body: Array(#"{"error":"use \#(m.rawValue) for \#(path)"}"#.utf8), allow: m.rawValue)))
            }
            return .success(route)
        }
        switch parts.first {
        case "metrics" where parts.count == 1: return expect(.GET, .metrics)
        case "v2": break
        default: return .failure(ReplyError(.error("no such endpoint: \(path)", status: .notFound)))
        }
        parts.removeFirst()
        if parts.isEmpty { return expect(.GET, .serverMetadata) }
        if parts == ["health", "live"] { return expect(.GET, .live) }
        if parts == ["health", "ready"] { return expect(.GET, .ready) }
        guard parts.count >= 2, parts[0] == "models" else {
            return .failure(ReplyError(.error("no such endpoint: \(path)", status: .notFound)))
        }
        let name = parts[1]
        guard let m = server.model(named: name) else {
            return .failure(ReplyError(.error("no model named '\(name)' (loaded: \(server.models.map(\.name).joined(separator: ", ")))", status: .notFound)))
        }
        var rest = Array(parts.dropFirst(2))
        if rest.count >= 2 && rest[0] == "versions" {
            guard rest[1] == "1" else {
                return .failure(ReplyError(.error("model '\(name)' has only version 1", status: .notFound)))
            }
            rest.removeFirst(2)
        }
        switch rest {
        case []: return expect(.GET, .modelMetadata(m))
        case ["ready"]: return expect(.GET, .modelReady(m))
        case ["infer"]: return expect(.POST, .infer(m))
        case ["generate"]: return expect(.POST, .generate(m))
        case ["generate_stream"]: return expect(.POST, .generateStream(m))
        default: return .failure(ReplyError(.error("no such endpoint: \(path)", status: .notFound)))
        }
    }

    struct ReplyError: Error {
        let reply: Reply
        init(_ reply: Reply) { self.reply = reply }
    }

    /// The reply to a request that is not an inference.
    func answer(_ route: Route) -> Reply {
        switch route {
        case .live: return .json(.object([("live", .bool(true))]))
        case .ready:
            return isDraining ? .json(.object([("ready", .bool(false))]), status: .serviceUnavailable) : .json(.object([("ready", .bool(true))]))
        case .serverMetadata:
            return .json(.object([("name", .string("dlserve")), ("version", .string("1")),
                                  ("extensions", .array([.string("binary_tensor_data"), .string("generate")]))]))
        case .metrics:
            var r = Reply(status: .ok, body: Array(metrics.render(queueDepth: runQueue.depth, inFlight: requestsInFlight).utf8))
            r.contentType = "text/plain; version=0.0.4; charset=utf-8"
            return r
        case .modelMetadata(let m): return .json(server.metadata(model: m))
        case .modelReady(let m): return .json(.object([("name", .string(server.models[m].name)), ("ready", .bool(true))]))
        case .infer, .generate, .generateStream: return .error("internal: inference routed as a plain request", status: .internalServerError)
        }
    }

    /// Parses an inference body and runs it: at once on the caller's thread (the event loop) when
    /// `RunQueue.runHereIfIdle` takes it, else queued. `done` gets the reply on the caller's thread
    /// (run here, or refused before running) or on a runner thread.
    func infer(model m: Int, headerLength: String?, body: inout [UInt8], generate: Bool = false, done: @escaping @Sendable (Reply) -> Void) {
        var jsonLength = body.count
        if let text = headerLength {
            // (Foundation's trimming only when the plain number does not parse: it cost 2.5% of a small request.)
            guard let n = Int(text) ?? Int(text.trimmingCharacters(in: .whitespaces)), n >= 0, n <= body.count else {
                done(.error("Inference-Header-Content-Length is '\(text)'; it must be a whole number of bytes no larger than the body (\(body.count))", status: .badRequest))
                return
            }
            jsonLength = n
        }
        let job: ServeJob
        if generate {
            guard jsonLength == body.count else {
                done(.error("a generate request is JSON only (no binary data)", status: .badRequest))
                return
            }
            job = prepareGenerate(model: m, body: &body)
            if case .generate(let g) = job, g.streamAsked {
                done(.error("\"stream\": true is for the stdio protocol; over HTTP, POST /v2/models/\(server.models[m].name)/generate_stream", status: .badRequest))
                return
            }
        } else if jsonLength == body.count {
            body.append(0)  // the decoder may look one byte past the JSON
            job = body.withUnsafeBytes { b in
                server.prepareInfer(body: UnsafeRawBufferPointer(rebasing: b[0..<jsonLength]), binary: UnsafeRawBufferPointer(start: nil, count: 0), model: m)
            }
        } else {
            var json = Array(body[0..<jsonLength])
            json.append(0)
            job = json.withUnsafeBytes { j in
                body.withUnsafeBytes { b in
                    server.prepareInfer(body: UnsafeRawBufferPointer(rebasing: j.dropLast()), binary: UnsafeRawBufferPointer(rebasing: b[jsonLength...]), model: m)
                }
            }
        }
        if case .answer = job {
            done(reply(to: job, outcome: server.run([job])[0]))
            return
        }
        // An idle server runs a short request here: handing it to a runner and the answer back to
        // the event loop cost two thread wake-ups (the MLP at batch 1 went from 167 to 141 us).
        if let outcome = runQueue.runHereIfIdle(job) {
            done(reply(to: job, outcome: outcome))
            return
        }
        runQueue.submit(job) { [self] outcome in done(reply(to: job, outcome: outcome)) }
    }

    /// Parses a generate body (JSON only) for model `m`.
    func prepareGenerate(model m: Int, body: inout [UInt8]) -> ServeJob {
        body.append(0)  // the decoder may look one byte past the JSON
        return body.withUnsafeBytes { b in server.prepareGenerate(body: UnsafeRawBufferPointer(rebasing: b.dropLast()), model: m) }
    }

    /// Triton's generate_stream: parses the body and, when it is a valid generation, calls `start`
    /// (on the caller's thread), then runs it on a runner, handing each new token's answer to
    /// `event` (false: the reader is gone, stop generating) and at the end `done` with the error
    /// that stopped it, if any. A request refused before it starts gets its reply in `refused`.
    func stream(model m: Int, body: inout [UInt8], refused: (Reply) -> Void, start: () -> Void,
                event: @escaping @Sendable (JSON) -> Bool, done: @escaping @Sendable (_ error: JSON?) -> Void) {
        let job = prepareGenerate(model: m, body: &body)
        guard case .generate(var g) = job else {
            refused(reply(to: job, outcome: server.run([job])[0]))
            return
        }
        g.stream = event
        start()
        runQueue.submit(.generate(g)) { outcome in
            guard let message = InferenceServer.errorMessage(outcome) else { return done(nil) }
            var fields: [(String, JSON)] = []
            if case .answer(let json) = outcome, let id = json["id"], id != .null { fields.append(("id", id)) }
            done(.object(fields + [("error", .string(message))]))
        }
    }

    private func reply(to job: ServeJob, outcome: ServeOutcome) -> Reply {
        if let message = InferenceServer.errorMessage(outcome) {
            var fields: [(String, JSON)] = []
            if case .answer(let json) = outcome, let id = json["id"], id != .null { fields.append(("id", id)) }
            fields.append(("error", .string(message)))
            return .json(.object(fields), status: .badRequest)
        }
        var out: [UInt8] = []
        server.encode(outcome, into: &out)
        let jsonLength = out.count
        server.appendBinary(outcome, into: &out)
        guard out.count > jsonLength else { return Reply(status: .ok, body: out) }
        return Reply(status: .ok, body: out, contentType: "application/octet-stream", headerLength: jsonLength)
    }
}

/// One connection's requests: collects each body (within the limit), routes it, and writes the
/// reply when it is ready.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let http: HTTPServer
    private var counted = false
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// The request is answered already (too large): the rest of it is dropped.
    private var refused = false
    /// A request is between its head and its reply.
    private var open = false
    private var started: UInt64 = 0
    private var responding = false
    /// When the last answer was written (or the connection opened), for the idle check.
    private var answeredAt = NIODeadline.now()

    init(http: HTTPServer) { self.http = http }

    func channelActive(context: ChannelHandlerContext) {
        guard http.openConnection() else {
            http.metrics.rejectedConnection()
            context.close(promise: nil)
            return
        }
        counted = true
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if open {
            open = false
            http.requestFinished()
        }
        if counted {
            counted = false
            http.closeConnection()
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            // Nothing received for the idle time: close unless a request is under way or was
            // answered within it (the timer fires again an idle time later).
            if !open, NIODeadline.now() - answeredAt >= .seconds(Int64(http.limits.idleSeconds)) { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Malformed HTTP (the parser's errors, headers over the limit): answer once if no reply
        // is under way, then close.
        if error is HTTPParserError, !responding {
            if !open {
                open = true
                started = DispatchTime.now().uptimeNanoseconds
                http.requestStarted()
            }
            let message = "malformed HTTP request: \(error)"
            write(context: context, .error(message, status: .badRequest), keepAlive: false, model: nil)
            return
        }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            refused = false
            open = true
            started = DispatchTime.now().uptimeNanoseconds
            http.requestStarted()
            if let length = h.headers.first(name: "content-length").flatMap({ Int($0) }), length > http.limits.maxBodyBytes {
                refuse(context: context, length)
            } else if let length = h.headers.first(name: "content-length").flatMap({ Int($0) }), length > 0 {
                body.reserveCapacity(length + 1)
            }
        case .body(let buffer):
            guard !refused else { return }
            guard body.count + buffer.readableBytes <= http.limits.maxBodyBytes else {
                refuse(context: context, body.count + buffer.readableBytes)
                return
            }
            buffer.withUnsafeReadableBytes { body.append(contentsOf: $0) }
        case .end:
            guard !refused, let h = head else { return }
            head = nil
            dispatch(context: context, head: h)
        }
    }

    private func refuse(context: ChannelHandlerContext, _ size: Int) {
        refused = true
        body = []
        write(context: context, .error("the request body has \(size) bytes or more, over the limit of \(http.limits.maxBodyBytes)", status: .payloadTooLarge),
              keepAlive: false, model: nil)
    }

    private func dispatch(context: ChannelHandlerContext, head h: HTTPRequestHead) {
        let keepAlive = h.isKeepAlive
        let (m, generate): (Int, Bool)
        switch http.route(method: h.method, uri: h.uri) {
        case .failure(let e):
            write(context: context, e.reply, keepAlive: keepAlive, model: nil)
            return
        case .success(.infer(let i)): (m, generate) = (i, false)
        case .success(.generate(let i)): (m, generate) = (i, true)
        case .success(.generateStream(let i)):
            stream(context: context, model: i, keepAlive: keepAlive)
            return
        case .success(let route):
            write(context: context, http.answer(route), keepAlive: keepAlive, model: nil)
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let name = http.server.models[m].name
        var body = self.body
        self.body = []
        http.infer(model: m, headerLength: h.headers.first(name: "inference-header-content-length"), body: &body,
                   generate: generate) { reply in
            if bound.eventLoop.inEventLoop {
                let (handler, context) = bound.value
                handler.write(context: context, reply, keepAlive: keepAlive, model: name)
                return
            }
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.write(context: context, reply, keepAlive: keepAlive, model: name)
            }
        }
    }

    /// generate_stream: the head at once (200, `text/event-stream`, chunked), then `data: {...}`
    /// and a blank line per new token as the runner makes it, an error as one more event, and the
    /// end. A request refused before generating is answered as plain JSON with its 4xx status.
    private func stream(context: ChannelHandlerContext, model m: Int, keepAlive: Bool) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let name = http.server.models[m].name, channel = context.channel
        var body = self.body
        self.body = []
        // Both run on the event loop, in order: the runner's events, then its end.
        @Sendable func onLoop(_ work: @escaping @Sendable (HTTPRequestHandler, ChannelHandlerContext) -> Void) {
            bound.eventLoop.execute { work(bound.value.0, bound.value.1) }
        }
        http.stream(model: m, body: &body, refused: { write(context: context, $0, keepAlive: keepAlive, model: name) }, start: {
            streamAlive = keepAlive && !http.isDraining
            writeHead(context: context, status: .ok, contentType: "text/event-stream; charset=utf-8", contentLength: nil, alive: streamAlive)
            context.flush()
        }, event: { answer in
            onLoop { handler, context in handler.sendEvent(context: context, answer) }
            return channel.isActive
        }, done: { error in
            onLoop { handler, context in
                if let error { handler.sendEvent(context: context, error) }
                handler.finish(context: context, status: .ok, failed: error != nil, alive: handler.streamAlive, model: name)
            }
        })
    }

    /// Whether the connection stays open after the stream under way.
    private var streamAlive = false

    private func sendEvent(context: ChannelHandlerContext, _ answer: JSON) {
        guard open else { return }
        let bytes = Array("data: \(answer.serialized())\n\n".utf8)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
    }

    /// Writes `reply` and ends the request; closes the connection unless kept alive.
    private func write(context: ChannelHandlerContext, _ reply: HTTPServer.Reply, keepAlive: Bool, model: String?) {
        guard open else { return }  // the connection went away meanwhile
        let alive = keepAlive && !http.isDraining && reply.status != .payloadTooLarge
        writeHead(context: context, status: reply.status, contentType: reply.contentType, contentLength: reply.body.count, alive: alive,
                  headerLength: reply.headerLength, allow: reply.allow)
        if !reply.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        }
        finish(context: context, status: reply.status, failed: reply.status != .ok, alive: alive, model: model)
    }

    /// A reply's head; without `contentLength` the body goes chunked.
    private func writeHead(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, contentLength: Int?, alive: Bool,
                           headerLength: Int? = nil, allow: String? = nil) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        if let n = contentLength { headers.add(name: "Content-Length", value: String(n)) }
        if let n = headerLength { headers.add(name: "Inference-Header-Content-Length", value: String(n)) }
        if let allow { headers.add(name: "Allow", value: allow) }
        headers.add(name: "Connection", value: alive ? "keep-alive" : "close")
        responding = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
    }

    /// Ends the reply under way and the request: metrics, bookkeeping, and the close unless `alive`.
    private func finish(context: ChannelHandlerContext, status: HTTPResponseStatus, failed: Bool, alive: Bool, model: String?) {
        guard open else { return }  // the connection went away meanwhile
        let finished = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        responding = false
        answeredAt = .now()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        if let model { http.metrics.inference(model: model, seconds: seconds, failed: failed) }
        http.metrics.response(status: status.code)
        open = false
        http.requestFinished()
        if !alive {
            let ctx = NIOLoopBound(context, eventLoop: context.eventLoop)
            finished.whenComplete { _ in ctx.value.close(promise: nil) }
        }
    }
}
