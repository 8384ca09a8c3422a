import DLTensor
import Testing

/// The one broadcasting rule, on concrete and symbolic shapes.
@Suite struct BroadcastTests {
    @Test func concreteShapesFollowNumpy() throws {
        #expect(try Broadcast.shape([2, 3, 4], [3, 1]) == [2, 3, 4])
        #expect(try Broadcast.shape([1, 3, 1], [2, 1, 5]) == [2, 3, 5])
        #expect(try Broadcast.shape([[2, 1], [1, 5], []]) == [2, 5])
        #expect(try Broadcast.shape([0], [1]) == [0])
        #expect(try Broadcast.shape([]) == [])
        #expect(throws: Broadcast.Mismatch(shapes: [[0], [3]].map { [Dim]($0) }, axis: 0)) { try Broadcast.shape([0], [3]) }
    }

    @Test func symbolicDimsKeepTheirNames() throws {
        let n = Dim.symbolic("N"), s = Dim.symbolic("S")
        #expect(try Broadcast.dims([n, .fixed(3)], [.fixed(1), .fixed(3)]) == [n, .fixed(3)])
        #expect(try Broadcast.dims([n], [.fixed(4)]) == [.fixed(4)])
        #expect(try Broadcast.dims([n], [n]) == [n])
        #expect(try Broadcast.dims([n], [s]) == [.unknown])
        #expect(try Broadcast.dims([.unknown], [.fixed(1)]) == [.unknown])
        #expect(throws: Broadcast.Mismatch.self) { try Broadcast.dims([n, .fixed(2)], [.fixed(3)]) }
    }

    @Test func theErrorNamesTheClashingSizes() {
        do {
            _ = try Broadcast.dims([.symbolic("N"), .fixed(2)], [.fixed(3)])
            Issue.record("expected a mismatch")
        } catch {
            #expect(error.description == "shapes [N, 2] and [3] do not broadcast (sizes 2 and 3 at axis 1)")
        }
    }

    @Test func stridesReadAnOperandAlongTheOutput() throws {
        #expect(try Broadcast.strides(of: [3, 1], along: [2, 3, 4]) == [0, 1, 0])
        #expect(try Broadcast.strides(of: [2, 3, 4], along: [2, 3, 4]) == [12, 4, 1])
        #expect(throws: Broadcast.Mismatch.self) { try Broadcast.strides(of: [2], along: [3]) }
        #expect(throws: Broadcast.Mismatch.self) { try Broadcast.strides(of: [1, 2], along: [2]) }
    }
}
