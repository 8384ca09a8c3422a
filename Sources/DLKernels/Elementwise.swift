import DLTensor

/// A binary arithmetic operation (ONNX `Add`, `Sub`, `Mul`, `Div`).
public enum BinaryOperation: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div
    /// The larger (smaller) operand; for floats NaN wins, as ONNX `Max`/`Min` and numpy's
    /// `maximum`/`minimum` have it.
    case max, min
    /// ONNX `PRelu`: `a` where it is not below zero, else `a·b` (`b` the slope; NaN stays NaN).
    case prelu
}

/// Elementwise kernels: binary arithmetic with numpy broadcasting (this file) and unary float32
/// functions (`Elementwise+Unary.swift`).
///
/// Binary kernels take a ``BroadcastPlan`` (or the three shapes, to build one on the spot).
/// `out` holds `plan.outputCount` elements and may be the same buffer as an operand whose shape
/// equals the output shape (in place); it must not otherwise overlap an operand.
/// Integer arithmetic wraps around on overflow (two's complement, like ONNX Runtime). Integer
/// division truncates toward zero, as ONNX and C do; dividing by zero gives 0 (never a trap:
/// ONNX leaves it undefined, and a server must not crash on a request), and `min / -1` gives `min`.
public enum Elementwise {
    /// `out = a op b` over float32, IEEE semantics (`x / 0` is ±infinity or NaN); large outputs
    /// are split over the runtime's workers (``BroadcastPlan/forEachPart(_:)``: the same bits).
    public static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, plan: BroadcastPlan
    ) {
        plan.forEachPart { part, o, ka, kb in
            let a = a + ka, b = b + kb, out = out + o
            switch op {
            case .add: part.run(FloatAdd<Float>.self, a, b, out)
            case .sub: part.run(FloatSub<Float>.self, a, b, out)
            case .mul: part.run(FloatMul<Float>.self, a, b, out)
            case .div: part.run(FloatDiv<Float>.self, a, b, out)
            case .max: part.run(FloatMaximum.self, a, b, out)
            case .min: part.run(FloatMinimum.self, a, b, out)
            case .prelu: part.run(FloatPRelu.self, a, b, out)
            }
        }
    }

    /// Elements below which an elementwise loop runs on one thread: a pass over fewer takes
    /// microseconds, less than waking a worker (resnet's 32 x 32 x 32 residual Adds, split, took
    /// its 2-thread run from 0.40 to 0.78 ms).
    public static let splitMinimum = 262_144

    /// `body(x + lo, y + lo, n)` over parts of `count` elements run on the runtime's workers (one
    /// call under ``splitMinimum``), cut at multiples of 16 so every element falls at the same
    /// vector lane as in one pass: a unary loop split this way gives the same bits.
    public static func splitting(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) {
        guard count >= splitMinimum else {
            body(x, y, count)
            return
        }
        ParallelFor.runInVectors(count) { r in body(x + r.lowerBound, y + r.lowerBound, r.count) }
    }

    /// `out = aᵇ` over float32 with broadcasting (ONNX's Pow; see `FloatPow`).
    public static func power(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, plan: BroadcastPlan) {
        plan.run(FloatPow.self, a, b, out)
    }

    /// `out = a op b` over int64 (wrapping; division as described on ``Elementwise``).
    public static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Int64>, _ b: UnsafePointer<Int64>,
        _ out: UnsafeMutablePointer<Int64>, plan: BroadcastPlan
    ) {
        runInteger(op, a, b, out, plan)
    }

    /// `out = a op b` over int32 (wrapping; division as described on ``Elementwise``).
    public static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Int32>, _ b: UnsafePointer<Int32>,
        _ out: UnsafeMutablePointer<Int32>, plan: BroadcastPlan
    ) {
        runInteger(op, a, b, out, plan)
    }

    /// Builds the ``BroadcastPlan`` for `outShape`, `aShape`, `bShape` and runs the float32 kernel.
    /// - Throws: when an operand does not broadcast to `outShape`.
    package static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Float>, shape aShape: [Int],
        _ b: UnsafePointer<Float>, shape bShape: [Int],
        _ out: UnsafeMutablePointer<Float>, shape outShape: [Int]
    ) throws(Broadcast.Mismatch) {
        binary(op, a, b, out, plan: try BroadcastPlan(outShape: outShape, operands: [aShape, bShape]))
    }

    /// Builds the ``BroadcastPlan`` and runs the int64 kernel.
    package static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Int64>, shape aShape: [Int],
        _ b: UnsafePointer<Int64>, shape bShape: [Int],
        _ out: UnsafeMutablePointer<Int64>, shape outShape: [Int]
    ) throws(Broadcast.Mismatch) {
        binary(op, a, b, out, plan: try BroadcastPlan(outShape: outShape, operands: [aShape, bShape]))
    }

    /// Builds the ``BroadcastPlan`` and runs the int32 kernel.
    package static func binary(
        _ op: BinaryOperation, _ a: UnsafePointer<Int32>, shape aShape: [Int],
        _ b: UnsafePointer<Int32>, shape bShape: [Int],
        _ out: UnsafeMutablePointer<Int32>, shape outShape: [Int]
    ) throws(Broadcast.Mismatch) {
        binary(op, a, b, out, plan: try BroadcastPlan(outShape: outShape, operands: [aShape, bShape]))
    }

    @inline(__always)
    static func runInteger<T: FixedWidthInteger & SIMDScalar>(
        _ op: BinaryOperation, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>,
        _ out: UnsafeMutablePointer<T>, _ plan: BroadcastPlan
    ) {
        switch op {
        case .add: plan.run(IntAdd<T>.self, a, b, out)
        case .sub: plan.run(IntSub<T>.self, a, b, out)
        case .mul: plan.run(IntMul<T>.self, a, b, out)
        case .div: plan.run(IntDiv<T>.self, a, b, out)
        case .max: plan.run(IntMax<T>.self, a, b, out)
        case .min: plan.run(IntMin<T>.self, a, b, out)
        case .prelu: plan.run(IntPRelu<T>.self, a, b, out)
        }
    }
}
