import DLTensor

/// The spatial ops beyond Conv, ConvInteger and the basic poolings: transposed, deformable and
/// stateful causal convolution, Lp and global poolings, unpooling, resampling (Resize, Upsample,
/// GridSample, AffineGrid, RoiAlign), NonMaxSuppression and the space/depth rearrangements.
/// Their output types are decided at run time (arity from the newest ONNX spec of each op).
enum SpatialOps {
    static var schemas: [OpSchema] {
        [
            .windowed("ConvTranspose", inputs: 2...3),
            .windowed("DeformConv", inputs: 3...5),
            .windowed("Col2Im", inputs: 3...3),
            .runtimeShaped("CausalConvWithState", inputs: 2...4, outputs: 1...2),
            .windowed("LpPool", inputs: 1...1),
            .runtimeShaped("GlobalMaxPool", inputs: 1...1),
            .runtimeShaped("GlobalLpPool", inputs: 1...1),
            .windowed("MaxUnpool", inputs: 2...3),
            .runtimeShaped("MaxRoiPool", inputs: 2...2),
            .runtimeShaped("Resize", inputs: 1...4),
            .runtimeShaped("Upsample", inputs: 1...2),
            .runtimeShaped("GridSample", inputs: 2...2),
            .runtimeShaped("AffineGrid", inputs: 2...2),
            .runtimeShaped("RoiAlign", inputs: 3...3),
            .runtimeShaped("NonMaxSuppression", inputs: 2...5),
            .runtimeShaped("CenterCropPad", inputs: 2...2),
            .runtimeShaped("DepthToSpace", inputs: 1...1),
            .runtimeShaped("SpaceToDepth", inputs: 1...1),
        ]
    }
}

extension OpSchema {
    /// A window op whose output types the runtime decides; its window attributes are read and
    /// checked (`WindowAttributes`) when the graph is typed, so a bad value is refused at load.
    static func windowed(_ name: String, inputs: ClosedRange<Int>, outputs: ClosedRange<Int> = 1...1) -> OpSchema {
        OpSchema(name, inputs: inputs, outputs: outputs) { ctx throws(GraphError) in
            _ = try WindowAttributes(node: ctx.node)
            return Array(repeating: nil, count: ctx.node.outputs.count)
        }
    }
}
