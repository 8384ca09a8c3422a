import DLTensor
import Testing

/// `Tensor` prints like a value and compares as one.
struct TensorDescriptionTests {
    @Test func printsTypeShapeAndNestedElementsInTheirOwnPrecision() {
        #expect(Tensor(shape: [2, 3], scalars: [Float](arrayLiteral: 0.1, 2, 3, 4, 5, -6.5)).description
                == "float32[2, 3] [[0.1, 2.0, 3.0], [4.0, 5.0, -6.5]]")
        #expect(Tensor(scalar: Int64(-7)).description == "int64[] -7")
        #expect(Tensor(shape: [2], scalars: [true, false]).description == "bool[2] [true, false]")
        #expect(Tensor(shape: [1, 2], strings: ["a", "b"]).description == "string[1, 2] [[\"a\", \"b\"]]")
        #expect(Tensor(zeros: .float32, shape: [0, 3]).description == "float32[0, 3] []")
    }

    @Test func largeTensorsShowTheirEnds() {
        let t = Tensor(shape: [2, 1000], scalars: (0..<2000).map { Int32($0) })
        #expect(t.description == "int32[2, 1000] [0, 1, 2, ..., 1997, 1998, 1999]")
    }

    @Test func equalityIsTypeShapeAndBytes() {
        let a = Tensor(shape: [2], scalars: [Float.nan, 1])
        #expect(a == a)
        #expect(a == Tensor(shape: [2], scalars: [Float.nan, 1]))
        #expect(Tensor(shape: [2], scalars: [Float(0), 1]) != Tensor(shape: [2], scalars: [-Float(0), 1]))
        #expect(Tensor(shape: [2], scalars: [Float(1), 2]) != Tensor(shape: [1, 2], scalars: [Float(1), 2]))
        #expect(Tensor(shape: [1], scalars: [Int32(1)]) != Tensor(shape: [1], scalars: [Float(1)]))
    }
}
