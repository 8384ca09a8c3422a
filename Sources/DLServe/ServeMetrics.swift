import Foundation

/// Counters, gauges and histograms of the HTTP server, written in the Prometheus text exposition
/// format (version 0.0.4) for `GET /metrics`.
public final class ServeMetrics: @unchecked Sendable {
    /// A cumulative histogram: counts per upper bound, plus the sum and count of observations.
    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ v: Double) {
            if let i = bounds.firstIndex(where: { v <= $0 }) { counts[i] += 1 }
            sum += v
            count += 1
        }

        func write(_ name: String, labels: String, into out: inout String) {
            var cumulative = 0
            let sep = labels.isEmpty ? "" : ","
            for (bound, c) in zip(bounds, counts) {
                cumulative += c
                out += "\(name)_bucket{\(labels)\(sep)le=\"\(ServeMetrics.number(bound))\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(count)\n"
            let braces = labels.isEmpty ? "" : "{\(labels)}"
            out += "\(name)_sum\(braces) \(ServeMetrics.number(sum))\n"
            out += "\(name)_count\(braces) \(count)\n"
        }
    }

    static let latencyBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let batchBounds: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]

    private let lock = NSLock()
    private var responses: [UInt: Int] = [:]
    private var inferences: [String: Int] = [:]
    private var inferenceErrors: [String: Int] = [:]
    private var latency: [String: Histogram] = [:]
    private var batches = Histogram(bounds: ServeMetrics.batchBounds)
    private var connections = 0
    private var rejectedConnections = 0

    public init() {}

    /// One HTTP response sent with `status`.
    public func response(status: UInt) {
        lock.withLock { responses[status, default: 0] += 1 }
    }

    /// One inference request to `model` answered after `seconds`, failed or not.
    public func inference(model: String, seconds: Double, failed: Bool) {
        lock.withLock {
            inferences[model, default: 0] += 1
            if failed { inferenceErrors[model, default: 0] += 1 }
            latency[model, default: Histogram(bounds: Self.latencyBounds)].observe(seconds)
        }
    }

    /// One run of `size` requests (1 unless dynamically batched).
    public func batch(size: Int) {
        lock.withLock { batches.observe(Double(size)) }
    }

    /// A connection opened (`+1`) or closed (`-1`).
    public func connection(_ delta: Int) {
        lock.withLock { connections += delta }
    }

    public func rejectedConnection() {
        lock.withLock { rejectedConnections += 1 }
    }

    /// The exposition text; `queueDepth` and `inFlight` are read by the caller at that moment.
    public func render(queueDepth: Int, inFlight: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = ""
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        header("dlserve_http_responses_total", "counter", "HTTP responses sent, by status code.")
        for code in responses.keys.sorted() { out += "dlserve_http_responses_total{code=\"\(code)\"} \(responses[code] ?? 0)\n" }
        header("dlserve_inference_requests_total", "counter", "Inference requests answered, by model.")
        for m in inferences.keys.sorted() { out += "dlserve_inference_requests_total{model=\"\(Self.label(m))\"} \(inferences[m] ?? 0)\n" }
        header("dlserve_inference_errors_total", "counter", "Inference requests answered with an error, by model.")
        for m in inferences.keys.sorted() { out += "dlserve_inference_errors_total{model=\"\(Self.label(m))\"} \(inferenceErrors[m] ?? 0)\n" }
        header("dlserve_inference_duration_seconds", "histogram", "Time from request head to response, by model.")
        for m in latency.keys.sorted() { latency[m]?.write("dlserve_inference_duration_seconds", labels: "model=\"\(Self.label(m))\"", into: &out) }
        header("dlserve_batch_size", "histogram", "Requests per model run (above 1 with dynamic batching).")
        batches.write("dlserve_batch_size", labels: "", into: &out)
        header("dlserve_queue_depth", "gauge", "Inference requests waiting for a runner thread.")
        out += "dlserve_queue_depth \(queueDepth)\n"
        header("dlserve_requests_in_flight", "gauge", "HTTP requests received and not yet answered.")
        out += "dlserve_requests_in_flight \(inFlight)\n"
        header("dlserve_open_connections", "gauge", "Open HTTP connections.")
        out += "dlserve_open_connections \(connections)\n"
        header("dlserve_rejected_connections_total", "counter", "Connections closed at once because the connection limit was reached.")
        out += "dlserve_rejected_connections_total \(rejectedConnections)\n"
        return out
    }

    /// A label value with `\`, `"` and newlines escaped.
    static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : "\(v)"
    }
}
