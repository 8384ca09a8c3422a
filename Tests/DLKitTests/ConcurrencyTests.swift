import DLKernels
import DLKit
import DLTestSupport
import Foundation
import Testing

/// `Model.run` called from many threads at once (one shared model, and several models at once)
/// returns bit-identical answers to serial runs. The models cover every kernel family that splits
/// work over the runtime's workers: GEMM (mlp), im2col and direct convolution, pooling and
/// batch norm (cnn, yolo), attention and layer norm (encoder), the float32 LSTM with its batch
/// split (lstm_if at batch 16) and a plain graph with broadcasting (repeated_dims).
///
/// Each run is cut for two workers, so runs contend for the one worker pool: a run that finds it
/// taken computes the same chunks on its own thread. `scripts/sanitize --thread` runs this suite
/// under ThreadSanitizer.
@Suite struct ConcurrencyTests {
    /// A model and two input sets (other values, and other sizes where the model allows).
    struct Case: Sendable, CustomStringConvertible {
        let stem: String
        let model: Model
        let inputs: [[String: Tensor]]
        var description: String { stem }
    }

    static func load(_ stem: String, _ fixture: String, _ shapes: [[String: [Int]]]) throws -> Case {
        let model = try Model(contentsOf: URL(fileURLWithPath: TestPackage.fixture(fixture)))
        let inputs = try shapes.enumerated().map { i, s in
            try ModelComparison.randomInputs(for: model.inputs, shapes: s, seed: UInt64(17 + i))
        }
        return Case(stem: stem, model: model, inputs: inputs)
    }

    static func cases() throws -> [Case] {
        [
            try load("mlp", "models/mlp.onnx", [["x": [8, 784]], ["x": [3, 784]]]),
            try load("cnn", "models/cnn.onnx", [["x": [4, 3, 32, 32]], ["x": [1, 3, 32, 32]]]),
            try load("yolo", "models/real/yolo.onnx", [["images": [2, 3, 32, 32]], ["images": [1, 3, 32, 32]]]),
            try load("encoder", "models/real/encoder.onnx", [["x": [2, 7, 32]], ["x": [3, 4, 32]]]),
            try load("lstm_if", "models/real/lstm_if.onnx", [["X": [5, 16, 4], "cond": []], ["X": [3, 9, 4], "cond": []]]),
            try load("repeated_dims", "models/runtime/repeated_dims.onnx",
                     [["x": [1, 3, 16, 64], "s": [32, 1]], ["x": [2, 3, 8, 24], "s": [1, 5]]]),
        ]
    }

    /// One run cut for `workers` workers.
    static func run(_ c: Case, _ input: Int, workers: Int) throws -> [String: Tensor] {
        try ParallelFor.withWorkerCount(workers) { () throws(DLKitError) in try c.model.run(c.inputs[input]) }
    }

    /// The outputs' bytes, for exact comparison.
    static func bytes(_ outputs: [String: Tensor]) -> [String: [UInt8]] {
        outputs.mapValues { t in t.withUnsafeBytes { Array($0) } }
    }

    /// Runs `body(thread)` on `threads` threads started together; returns the errors thrown.
    static func concurrently(threads: Int, _ body: @escaping @Sendable (Int) throws -> Void) -> [String] {
        let errors = Locked<[String]>([])
        let start = DispatchSemaphore(value: 0), done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            let thread = Thread {
                start.wait()
                do { try body(t) } catch { errors.update { $0.append("thread \(t): \(error)") } }
                done.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        for _ in 0..<threads { start.signal() }
        done.wait()
        return errors.value
    }

    @Test(arguments: [1, 2])
    func oneSharedModelGivesSerialBitsOnEveryThread(workers: Int) throws {
        for c in try Self.cases() {
            let serial = try (0..<c.inputs.count).map { Self.bytes(try Self.run(c, $0, workers: workers)) }
            let mismatches = Locked<[String]>([])
            let errors = Self.concurrently(threads: 6) { t in
                for round in 0..<2 {
                    let i = (t + round) % c.inputs.count
                    if Self.bytes(try Self.run(c, i, workers: workers)) != serial[i] {
                        mismatches.update { $0.append("thread \(t) round \(round) input \(i)") }
                    }
                }
            }
            #expect(errors.isEmpty, "\(c): \(errors)")
            #expect(mismatches.value.isEmpty, "\(c) with \(workers) workers: \(mismatches.value)")
        }
    }

    @Test func severalModelsAtOnceGiveSerialBits() throws {
        let cases = try Self.cases()
        var serial: [[[String: [UInt8]]]] = []
        for c in cases { serial.append(try (0..<c.inputs.count).map { Self.bytes(try Self.run(c, $0, workers: 2)) }) }
        let expected = serial
        let mismatches = Locked<[String]>([])
        let errors = Self.concurrently(threads: 2 * cases.count) { t in
            for round in 0..<2 {
                let k = (t + round) % cases.count, i = (t / cases.count + round) % 2
                if Self.bytes(try Self.run(cases[k], i, workers: 2)) != expected[k][i] {
                    mismatches.update { $0.append("\(cases[k]) thread \(t) round \(round) input \(i)") }
                }
            }
        }
        #expect(errors.isEmpty, "\(errors)")
        #expect(mismatches.value.isEmpty, "\(mismatches.value)")
    }
}

/// A value shared between test threads behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout Value) -> Void) { lock.lock(); defer { lock.unlock() }; body(&stored) }
}
