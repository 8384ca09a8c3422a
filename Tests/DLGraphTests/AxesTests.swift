import DLGraph
import DLTensor
import Testing

/// `Axes`: the one normalisation of axis attributes and inputs.
struct AxesTests {
    @Test func negativeAxesCountFromTheEndAndOutOfRangeIsNil() {
        #expect(Axes.normalise(-1, rank: 4) == 3)
        #expect(Axes.normalise(-4, rank: 4) == 0)
        #expect(Axes.normalise(-5, rank: 4) == nil)
        #expect(Axes.normalise(4, rank: 4) == nil)
        #expect(Axes.normalise(0, rank: 0) == nil)
        // A position between dims (Flatten): rank itself is allowed.
        #expect(Axes.normalise(4, rank: 4, inclusive: true) == 4)
        #expect(Axes.normalise(5, rank: 4, inclusive: true) == nil)
    }

    @Test func aListRefusesRepeatsAfterNormalising() {
        #expect(Axes.normalise([0, -1], rank: 3) == [0, 2])
        #expect(Axes.normalise([2, -1], rank: 3) == nil)
        #expect(Axes.normalise([3], rank: 3) == nil)
    }

    @Test func anAttributeOutOfRangeIsRefusedNamingTheNode() throws {
        let n = Node(name: "sm", opType: "Softmax", inputs: ["x"], outputs: ["y"], attributes: [Attribute(name: "axis", value: .int(-3))])
        #expect(try n.axis(default: -1, rank: 3) == 0)
        do {
            _ = try n.axis(default: -1, rank: 2)
            Issue.record("axis -3 of rank 2 was accepted")
        } catch {
            #expect("\(error)".contains("'sm'") && "\(error)".contains("axis"))
        }
        // Inference refuses it the same way.
        #expect(throws: GraphError.self) { try inferOne("Softmax", [f32([2, 3])], attributes: [Attribute(name: "axis", value: .int(2))]) }
        #expect(try inferOne("Flatten", [f32([2, 3, 4])], attributes: [Attribute(name: "axis", value: .int(3))])[0] == f32([24, 1]))
    }
}
