import DLKernels
import Testing

struct ResamplingTests {
    @Test func halfPixelLinearUpsamplingInterpolatesBetweenNeighbours() {
        // 2 -> 4 with half_pixel: sources -0.25, 0.25, 0.75, 1.25 (edges clamp).
        let taps = Resampling.plan(inputSize: 2, outputSize: 4, scale: 2, mode: .linear, coordinates: .halfPixel)
        let y = Resampling.apply(taps, to: [10, 20], outer: 1, inputSize: 2, inner: 1)
        #expect(y == [10, 12.5, 17.5, 20])
    }

    @Test(arguments: [
        (Resampling.NearestRounding.roundPreferFloor, [Double](arrayLiteral: 1, 2, 2, 3)),
        (.roundPreferCeil, [1, 2, 3, 3]),
        (.floor, [1, 1, 2, 3]),
        (.ceil, [1, 2, 3, 3]),
    ])
    func nearestRoundingModesBreakTiesAsTheSpecSays(_ rounding: Resampling.NearestRounding, _ expected: [Double]) {
        // 3 -> 4, asymmetric: sources 0, 0.75, 1.5 (a tie), 2.25.
        let taps = Resampling.plan(inputSize: 3, outputSize: 4, scale: 4.0 / 3, mode: .nearest(rounding), coordinates: .asymmetric)
        #expect(Resampling.apply(taps, to: [1, 2, 3], outer: 1, inputSize: 3, inner: 1) == expected)
    }

    @Test func cubicWeightsSumToOneAndReproduceALinearRamp() {
        // a = -0.5 is the Keys kernel that is exact on linear (indeed quadratic) data.
        let taps = Resampling.plan(inputSize: 8, outputSize: 16, scale: 2, mode: .cubic(a: -0.5), coordinates: .alignCorners)
        for t in taps { #expect(abs(t.weights.reduce(0, +) - 1) < 1e-12) }
        let ramp = (0..<8).map(Double.init)
        let y = Resampling.apply(taps, to: ramp, outer: 1, inputSize: 8, inner: 1)
        for j in 3..<13 { #expect(abs(y[j] - Double(j) * 7 / 15) < 1e-9) }
    }

    @Test func antialiasedLinearDownsamplingWidensTheFootprint() {
        let plain = Resampling.plan(inputSize: 8, outputSize: 2, scale: 0.25, mode: .linear, coordinates: .halfPixel)
        let wide = Resampling.plan(inputSize: 8, outputSize: 2, scale: 0.25, mode: .linear, coordinates: .halfPixel, antialias: true)
        #expect(plain[0].weights.count == 2)
        #expect(wide[0].weights.count > 2)
        for t in wide { #expect(abs(t.weights.reduce(0, +) - 1) < 1e-12) }
    }

    @Test func cropAndResizeExtrapolatesOutsideTheRegion() {
        let taps = Resampling.plan(inputSize: 4, outputSize: 3, scale: 0.75, mode: .linear, coordinates: .tfCropAndResize, roi: (-0.5, 1))
        let y = Resampling.apply(taps, to: [0, 1, 2, 3], outer: 1, inputSize: 4, inner: 1, extrapolationValue: 9)
        // Sources: -1.5 (outside), 0.75, 3.
        #expect(y == [9, 0.75, 3])
    }
}
