// What `import DLKit` brings: tensors and the graph types alongside the API in this target.
@_exported import DLGraph
@_exported import DLTensor
// The ONNX writing choices a conversion takes (opset, external data) and what it reports.
@_exported import struct DLONNX.ONNXWriteOptions
@_exported import struct DLONNX.ONNXWriteReport
// How a model runs (threads, plans, passes, kernel paths), one value per model.
@_exported import struct DLRuntime.RuntimeOptions
// What `Model.profile` reports per node.
@_exported import struct DLRuntime.NodeTiming
// How a .tflite output stores its weights (`ConversionOptions.tfliteQuantize`).
@_exported import enum DLTFLite.TFLiteWriter
// Hugging Face folders: the tokenizer and what it gives, and the folder's own reader.
@_exported import struct DLHuggingFace.HFTokenizer
@_exported import struct DLHuggingFace.HFEncoding
@_exported import struct DLHuggingFace.HFFolder
@_exported import enum DLHuggingFace.HFError
// The errors `DLKitError` wraps, so a caller can match on the layer's own cases.
@_exported import enum DLRuntime.RuntimeError
@_exported import enum DLONNX.ONNXError
@_exported import enum DLSafeTensors.SafeTensorsError
@_exported import enum DLCheckpoint.CheckpointError
@_exported import enum DLTorch.TorchError
@_exported import enum DLKeras.KerasError
@_exported import enum DLOpenVINO.OpenVINOError
@_exported import enum DLTensorFlow.TensorFlowError
@_exported import enum DLTFLite.TFLiteError
// Keras (HDF5) files read in a helper process, since libhdf5 may crash on a hostile file.
@_exported import enum DLKeras.KerasIsolation
