import DLTensor

/// The spatial ops beyond Conv and the basic poolings: transposed, integer, deformable and
/// stateful causal convolution, Lp and global poolings, unpooling, resampling (Resize, Upsample,
/// GridSample, AffineGrid, RoiAlign), NonMaxSuppression and the space/depth rearrangements.
/// Their output types are decided at run time (arity from the newest ONNX spec of each op).
enum SpatialOps {
    static var schemas: [OpSchema] {
        [
            .runtimeShaped("ConvTranspose", inputs: 2...3),
            .runtimeShaped("ConvInteger", inputs: 2...4),
            .runtimeShaped("DeformConv", inputs: 3...5),
            .runtimeShaped("Col2Im", inputs: 3...3),
            .runtimeShaped("CausalConvWithState", inputs: 2...4, outputs: 1...2),
            .runtimeShaped("LpPool", inputs: 1...1),
            .runtimeShaped("GlobalMaxPool", inputs: 1...1),
            .runtimeShaped("GlobalLpPool", inputs: 1...1),
            .runtimeShaped("MaxUnpool", inputs: 2...3),
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
