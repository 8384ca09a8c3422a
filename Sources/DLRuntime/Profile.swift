#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import DLGraph
import DLTensor

/// The time one node took in one run (``Executor/profile(_:outputs:)``).
public struct NodeTiming: Sendable, Equatable {
    /// The node's name, or its op and index when it has none (the planned graph's, so fused
    /// nodes appear under the name the fusion gave them).
    public let name: String
    /// The op, with its domain when that is not the default one.
    public let opType: String
    /// The shapes of the node's inputs in this run (empty for an input left out).
    public let inputShapes: [[Int]]
    /// Nanoseconds from the start of the run to the start of the node.
    public let start: UInt64
    /// Nanoseconds the node took.
    public let duration: UInt64
}

/// Collects node timings during one run; nil everywhere a run is not profiled, so the only cost
/// of profiling support on an ordinary run is one optional check per node.
final class ProfileRecorder {
    private(set) var timings: [NodeTiming] = []
    private let origin = ProfileRecorder.now()

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Times `body` as a run of `node` on inputs of these shapes.
    func time<T>(_ node: Node, shapes: [[Int]], _ body: () throws(RuntimeError) -> T) throws(RuntimeError) -> T {
        let a = Self.now()
        let result = try body()
        let b = Self.now()
        let op = node.domain.isEmpty || node.domain == "ai.onnx" ? node.opType : "\(node.domain).\(node.opType)"
        timings.append(NodeTiming(name: node.displayName, opType: op, inputShapes: shapes,
                                  start: a - origin, duration: b - a))
        return result
    }
}
