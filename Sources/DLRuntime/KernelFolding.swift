import DLGraph
import DLKernels
import DLTensor

/// Constant folding through the runtime's kernels: `ConstantFolding` with `NodeRunner` as its
/// evaluator, so a folded node holds exactly what running it would give (the same dispatch, fast
/// variants included). The executor runs it in `GraphOptimizer.runtime`.
package enum KernelFolding: GraphPass {
    package static let name = ConstantFolding.name

    package static func run(_ graph: inout Graph) -> Bool {
        ConstantFolding.run(&graph, evaluate: evaluator(graph))
    }

    /// Runs a node on given inputs through the kernels, at `graph`'s opset; nil when it cannot.
    static func evaluator(_ graph: Graph) -> ConstantFolding.Evaluator {
        let opset = graph.metadata.onnxOpset
        return { node, inputs in
            guard NodeRunner.canRun(node) else { return nil }
            return try? NodeRunner.run(node, inputs: inputs, opset: opset)
        }
    }
}

/// `FuseQuantizedLookup` with `NodeRunner` as its evaluator: each table holds what the island's
/// own kernels give for the 256 input bytes.
package enum KernelLookupTables: GraphPass {
    package static let name = FuseQuantizedLookup.name

    package static func run(_ graph: inout Graph) -> Bool {
        FuseQuantizedLookup.run(&graph, evaluate: KernelFolding.evaluator(graph))
    }
}

extension GraphOptimizer {
    /// The passes the executor runs: the standard list, folding through the kernels. Without
    /// AVX-512 VNNI in this process the integer conv rewrites are left out (their nodes would
    /// run as the ops they replaced, with a copy more).
    package static let runtime = standard(folding: KernelFolding.self, lookup: KernelLookupTables.self).filter { pass in
        IntegerGemm.vnniPresent || ![ObjectIdentifier(FuseConvIntegerNHWC.self), ObjectIdentifier(FuseQLinearConv.self)].contains(ObjectIdentifier(pass))
    }
}
