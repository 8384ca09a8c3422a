/// The neural-network kernel families (softmax and losses, normalisation, attention, linear
/// algebra, quantisation, signal processing), registered in `OpKernels.table` in one place.
enum NeuralKernels {
    static var all: [KernelEntry] {
        SoftmaxKernels.all + NormalizationKernels.all + AttentionKernels.all + QuantizeKernels.all + SignalKernels.all + LinearAlgebraKernels.all
    }
}
