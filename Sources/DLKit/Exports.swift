// What `import DLKit` brings: tensors and the graph types alongside the API in this target.
@_exported import DLGraph
@_exported import DLTensor
// The ONNX writing choices a conversion takes (opset, external data) and what it reports.
@_exported import struct DLONNX.ONNXWriteOptions
@_exported import struct DLONNX.ONNXWriteReport
// How a model runs (threads, plans, passes, kernel paths), one value per model.
@_exported import struct DLRuntime.RuntimeOptions
