import DLGraph
import DLTensor

enum StringKernels {
    static var values: [(String, ValueKernel)] { [] }
    static var all: [(String, Kernel)] { [] }
}
