import DLGraph
import DLTensor

enum MLKernels {
    static var all: [(String, Kernel)] { [] }
}
