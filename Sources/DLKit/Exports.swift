// What `import DLKit` brings: tensors and the graph types alongside the API in this target.
@_exported import DLGraph
@_exported import DLTensor
// The ONNX writing choices a conversion takes (opset, external data) and what it reports.
@_exported import struct DLONNX.ONNXWriteOptions
@_exported import struct DLONNX.ONNXWriteReport
// Hugging Face folders: the tokenizer and what it gives, and the folder's own reader.
@_exported import struct DLHuggingFace.HFTokenizer
@_exported import struct DLHuggingFace.HFEncoding
@_exported import struct DLHuggingFace.HFFolder
@_exported import enum DLHuggingFace.HFError
