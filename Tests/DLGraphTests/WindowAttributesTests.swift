import DLGraph
import DLTensor
import Testing

/// `WindowAttributes`: the window attributes read once, checked, and resolved against sizes.
/// Expected numbers follow the ONNX operator spec's output-size formulas.
struct WindowAttributesTests {
    func node(_ attributes: [Attribute], op: String = "MaxPool") -> Node {
        Node(name: "pool1", opType: op, inputs: ["x"], outputs: ["y"], attributes: attributes)
    }
    func ints(_ name: String, _ v: [Int]) -> Attribute { Attribute(name: name, value: .ints(v)) }
    func autoPad(_ v: String) -> Attribute { Attribute(name: "auto_pad", value: .string(v)) }

    @Test func sameUpperPutsTheOddCellAtTheEnd() throws {
        // 7 wide, kernel 4, stride 2: out ceil(7/2) = 4, total pad (4-1)·2 + 4 − 7 = 3.
        let w = try WindowAttributes(node: node([ints("kernel_shape", [4]), ints("strides", [2]), autoPad("SAME_UPPER")]))
        #expect(w.autoPad == .sameUpper)
        let g = try w.geometry(input: [7], kernel: [4], isPooling: true)
        #expect(g.output == [4] && g.padsBegin == [1] && g.padsEnd == [2])
    }

    @Test func sameLowerPutsTheOddCellAtTheBeginning() throws {
        let w = try WindowAttributes(node: node([ints("kernel_shape", [4]), ints("strides", [2]), autoPad("SAME_LOWER")]))
        let g = try w.geometry(input: [7], kernel: [4], isPooling: true)
        #expect(g.output == [4] && g.padsBegin == [2] && g.padsEnd == [1])
    }

    @Test func validIgnoresThePads() throws {
        let w = try WindowAttributes(node: node([ints("kernel_shape", [3, 3]), ints("pads", [1, 1, 1, 1]), autoPad("VALID")]))
        let g = try w.geometry(input: [5, 6], kernel: [3, 3], isPooling: true)
        #expect(g.output == [3, 4] && g.padsBegin == [0, 0] && g.padsEnd == [0, 0])
    }

    @Test func notSetUsesTheExplicitPads() throws {
        let w = try WindowAttributes(node: node([ints("pads", [1, 0, 2, 0]), ints("strides", [2, 1])], op: "Conv"))
        let g = try w.geometry(input: [8, 5], kernel: [3, 3], isPooling: false)
        // floor((8 + 1 + 2 − 3) / 2) + 1 = 5; 5 − 3 + 1 = 3.
        #expect(g.output == [5, 3] && g.padsBegin == [1, 0] && g.padsEnd == [2, 0])
    }

    @Test func ceilModeRoundsUpAndPoolingDropsAWindowStartingInThePadding() throws {
        // 6 wide, kernel 2, stride 2, pad end 1: span 5 → ceil 3 windows; the third starts at 6,
        // inside the end padding, so a pooling drops it (opset 22 rule), a convolution keeps it.
        let w = try WindowAttributes(node: node([ints("kernel_shape", [2]), ints("strides", [2]), ints("pads", [0, 1]),
                                                 Attribute(name: "ceil_mode", value: .int(1))]))
        #expect(w.ceilMode)
        #expect(try w.geometry(input: [6], kernel: [2], isPooling: true).output == [3])
        #expect(try w.geometry(input: [6], kernel: [2], isPooling: false).output == [4])
        // 5 wide, kernel 2, stride 2, no pad: floor gives 2, ceil 3 (last window starts at 4 < 5).
        let c = try WindowAttributes(node: node([ints("kernel_shape", [2]), ints("strides", [2]), Attribute(name: "ceil_mode", value: .int(1))]))
        #expect(try c.geometry(input: [5], kernel: [2], isPooling: true).output == [3])
    }

    @Test func dilationsWidenTheWindow() throws {
        let w = try WindowAttributes(node: node([ints("dilations", [2])], op: "Conv"))
        // Kernel 3 dilated 2 covers 5 cells: 9 − 5 + 1 = 5 outputs.
        #expect(try w.geometry(input: [9], kernel: [3], isPooling: false).output == [5])
        var same = w
        same.autoPad = .sameUpper
        let g = try same.geometry(input: [9], kernel: [3], isPooling: false)
        #expect(g.output == [9] && g.padsBegin == [2] && g.padsEnd == [2])
    }

    @Test func transposedOutputFromPadsAndOutputPadding() throws {
        let w = try WindowAttributes(node: node([ints("strides", [2]), ints("pads", [1, 1]), ints("output_padding", [1])], op: "ConvTranspose"))
        // 2·(4 − 1) + 1 + 3 − 1 − 1 = 8.
        let g = try w.transposedGeometry(input: [4], kernel: [3])
        #expect(g.output == [8] && g.padsBegin == [1])
        // output_shape decides the size; NOTSET puts the larger half of the padding first.
        let s = try WindowAttributes(node: node([ints("strides", [2]), ints("output_shape", [8])], op: "ConvTranspose"))
        let gs = try s.transposedGeometry(input: [4], kernel: [3])
        #expect(gs.output == [8] && gs.padsBegin == [1] && gs.padsEnd == [0])
    }

    @Test func kernelShapeMustMatchTheWeight() throws {
        let w = try WindowAttributes(node: node([ints("kernel_shape", [3, 3])], op: "Conv"))
        #expect(try w.kernel(weight: [3, 3]) == [3, 3])
        #expect(throws: GraphError.self) { try w.kernel(weight: [5, 5]) }
        #expect(throws: GraphError.self) { try WindowAttributes(node: node([])).kernel(weight: nil) }
    }

    @Test func writesBackOnlyWhatDiffersFromTheDefaults() throws {
        let attrs = [ints("kernel_shape", [2, 2]), ints("strides", [2, 2]), autoPad("SAME_LOWER"), Attribute(name: "ceil_mode", value: .int(1))]
        let w = try WindowAttributes(node: node(attrs))
        #expect(w.attributes.map(\.name) == attrs.map(\.name))
        #expect(try WindowAttributes(node: node(w.attributes)) == w)
    }

    /// Each bad value is refused with a message naming the node and the attribute.
    @Test(arguments: [
        ("auto_pad", [Attribute(name: "auto_pad", value: .string("SAME"))]),
        ("strides", [Attribute(name: "kernel_shape", value: .ints([2])), Attribute(name: "strides", value: .ints([0]))]),
        ("dilations", [Attribute(name: "dilations", value: .ints([-1]))]),
        ("pads", [Attribute(name: "pads", value: .ints([0, -2]))]),
        ("group", [Attribute(name: "group", value: .int(0))]),
        ("kernel_shape", [Attribute(name: "kernel_shape", value: .ints([0, 2]))]),
        ("pads", [Attribute(name: "kernel_shape", value: .ints([2, 2])), Attribute(name: "pads", value: .ints([1, 1]))]),
        ("strides", [Attribute(name: "strides", value: .string("2"))]),
    ])
    func refusesInvalidValuesNamingTheNode(attribute: String, attrs: [Attribute]) {
        do {
            _ = try WindowAttributes(node: node(attrs))
            Issue.record("\(attrs) was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains("pool1"), "\(message)")
            #expect(message.contains(attribute), "\(message)")
        }
    }

    @Test func refusesAListOfTheWrongRankOrAWindowLargerThanTheInput() throws {
        let w = try WindowAttributes(node: node([ints("strides", [1, 1])]))
        #expect(throws: GraphError.self) { try w.geometry(input: [5], kernel: [2], isPooling: true) }
        let big = try WindowAttributes(node: node([]))
        do {
            _ = try big.geometry(input: [2], kernel: [5], isPooling: true)
            Issue.record("a window larger than the input was accepted")
        } catch {
            #expect("\(error)".contains("pool1"))
        }
    }

    /// The window ops whose types the runtime decides still have their attributes checked when
    /// the graph is typed.
    @Test(arguments: ["ConvTranspose", "ConvInteger", "LpPool", "MaxUnpool", "DeformConv", "Col2Im", "QLinearConv"])
    func runtimeShapedWindowOpsAreCheckedWhenTyped(_ op: String) throws {
        let arity = ["ConvTranspose": 2, "ConvInteger": 2, "LpPool": 1, "MaxUnpool": 2, "DeformConv": 3, "Col2Im": 3, "QLinearConv": 8][op] ?? 1
        let inputs = Array(repeating: f32([1, 1, 4, 4]), count: arity)
        #expect(try inferOne(op, inputs, attributes: [Attribute(name: "strides", value: .ints([1, 1]))]).count == 1)
        do {
            _ = try inferOne(op, inputs, attributes: [Attribute(name: "strides", value: .ints([0, 1]))])
            Issue.record("\(op) with strides [0, 1] was accepted")
        } catch {
            #expect("\(error)".contains("strides"), "\(error)")
        }
    }
}
