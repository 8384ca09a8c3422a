// What `import DLKit` brings: tensors and the graph types alongside the API in this target.
@_exported import DLGraph
@_exported import DLTensor
