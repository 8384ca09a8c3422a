import CKernels

/// Normalisation layers at inference time over contiguous float32 buffers.
public enum Normalization {
    /// ONNX `BatchNormalization` in inference mode:
    /// `y = scale[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + bias[c]`, folded per channel
    /// into one multiply-add.
    ///
    /// - Parameters:
    ///   - input, output: `[batch, channels, spatial]`, where `spatial` is the product of the
    ///     spatial sizes (1 for `[N, C]`). `output` may be `input`.
    ///   - scale, bias, mean, variance: `[channels]` each.
    ///   - epsilon: ONNX default 1e-5.
    public static func batchNormInference(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        batch: Int, channels: Int, spatial: Int,
        scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float
    ) {
        for n in 0..<batch {
            for c in 0..<channels {
                let a = scale[c] / (variance[c] + epsilon).squareRoot()
                let b = bias[c] - mean[c] * a
                let offset = (n * channels + c) * spatial
                affine(input + offset, output + offset, spatial, a, b)
            }
        }
    }

    /// ONNX `LayerNormalization` (and PyTorch `LayerNorm`) over the last dimensions:
    /// each row of `size` elements is normalised to zero mean and unit variance (biased variance),
    /// then `y = xhat * scale + bias` elementwise.
    ///
    /// - Parameters:
    ///   - input, output: `[rows, size]`: `size` is the product of the normalised dimensions.
    ///     `output` may be `input`.
    ///   - scale: `[size]`; bias: `[size]` or nil for none.
    ///   - meanOutput, invStdOutput: `[rows]` each, or nil: the row means and `1/sqrt(var + eps)`
    ///     (ONNX's optional outputs, which training reuses).
    public static func layerNorm(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        rows: Int, size: Int, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        epsilon: Float,
        meanOutput: UnsafeMutablePointer<Float>? = nil, invStdOutput: UnsafeMutablePointer<Float>? = nil
    ) {
        guard size > 0 else { return }
        // AVX-512 rows when the CPU has it (the loops below run 4 floats a step).
        if CPUFeatures.avx512, rows <= Int(Int32.max), size <= Int(Int32.max),
           dlk_layernorm_rows(input, output, Int32(rows), Int32(size), scale, bias, epsilon,
                              meanOutput, invStdOutput) == 0 {
            return
        }
        layerNormPortable(input, output, rows: rows, size: size, scale: scale, bias: bias, epsilon: epsilon,
                          meanOutput: meanOutput, invStdOutput: invStdOutput)
    }

    /// ``layerNorm(_:_:rows:size:scale:bias:epsilon:meanOutput:invStdOutput:)`` without the
    /// AVX-512 kernel (the fallback, and the tests' reference for it).
    static func layerNormPortable(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        rows: Int, size: Int, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        epsilon: Float, meanOutput: UnsafeMutablePointer<Float>?, invStdOutput: UnsafeMutablePointer<Float>?
    ) {
        guard size > 0 else { return }
        for r in 0..<rows {
            let x = input + r * size, y = output + r * size
            let mean = Reduce.sum(x, count: size) / Float(size)
            var sq: Float = 0
            for i in 0..<size {
                let d = x[i] - mean
                sq += d * d
            }
            let invStd = 1 / (sq / Float(size) + epsilon).squareRoot()
            meanOutput?[r] = mean
            invStdOutput?[r] = invStd
            if let bias {
                for i in 0..<size { y[i] = (x[i] - mean) * invStd * scale[i] + bias[i] }
            } else {
                for i in 0..<size { y[i] = (x[i] - mean) * invStd * scale[i] }
            }
        }
    }

    /// `y = x * a + b` over `n` elements.
    @inline(__always)
    static func affine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float, _ b: Float) {
        let va = SIMD8<Float>(repeating: a), vb = SIMD8<Float>(repeating: b)
        var i = 0
        while i + 8 <= n {
            (SIMD8.load(x + i) * va + vb).store(y + i)
            i += 8
        }
        while i < n {
            y[i] = x[i] * a + b
            i += 1
        }
    }
}
