/// The globals a weights pickle may name, and what each stands for.
///
/// The list follows `torch.load(weights_only=True)` (torch/_weights_only_unpickler.py): plain
/// containers, `torch.Size`, `torch.device`, dtypes, storage and tensor classes, quantization
/// schemes, the tensor rebuild functions, `_codecs.encode`, `builtins.bytearray/set/complex`.
/// TorchScript archives add their own module classes (`__torch__.*`) and the list helpers of
/// `torch.jit._pickle`, accepted only when reading such an archive. Everything else is refused
/// by name when the pickle mentions it, before anything is built.
enum PickleGlobal: Sendable, Equatable {
    case orderedDict, counter
    case rebuildTensor, rebuildTensorV2, rebuildTensorV3
    case rebuildParameter, rebuildParameterWithState, rebuildFromTypeV2
    /// Rebuild functions torch allows but DLKit does not read (quantized, sparse, nested, meta,
    /// subclass, device-from-numpy tensors), refused when called.
    case unsupportedRebuild(String)
    case size, device, getLayout
    case dtype(TorchScalarType)
    /// A quantization scheme (`torch.per_tensor_affine`), a plain marker value.
    case qscheme(String)
    /// `torch.FloatStorage`, `torch.storage.UntypedStorage`, ...: the class name after `torch.`.
    case storageClass(String)
    /// `torch.Tensor`, `torch.nn.parameter.Parameter`, `torch.FloatTensor`, ...
    case tensorClass(isParameter: Bool)
    case codecsEncode, bytearray, set, complex
    /// A TorchScript class `__torch__.<path>`.
    case scriptClass(String)
    /// `torch.jit._pickle.<name>`: `restore_type_tag` and the `build_*list` helpers.
    case jitHelper(String)

    /// The meaning of global `module.name`, or nil when it is not allowed.
    static func resolve(module: String, name: String, torchScript: Bool) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("collections", "Counter"): return .counter
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_sparse_tensor"),
             ("torch._utils", "_rebuild_meta_tensor_no_storage"), ("torch._utils", "_rebuild_nested_tensor"),
             ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
             ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"):
            return .unsupportedRebuild("\(module).\(name)")
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromTypeV2
        case ("torch", "Size"): return .size
        case ("torch", "device"): return .device
        case ("torch.serialization", "_get_layout"): return .getLayout
        case ("torch", "Tensor"): return .tensorClass(isParameter: false)
        case ("torch.nn.parameter", "Parameter"): return .tensorClass(isParameter: true)
        case ("_codecs", "encode"): return .codecsEncode
        case ("builtins", "bytearray"), ("__builtin__", "bytearray"): return .bytearray
        case ("builtins", "set"), ("__builtin__", "set"): return .set
        case ("builtins", "complex"), ("__builtin__", "complex"): return .complex
        case ("torch.storage", "UntypedStorage"), ("torch", "UntypedStorage"): return .storageClass("UntypedStorage")
        case ("torch.storage", "TypedStorage"), ("torch", "TypedStorage"): return .storageClass("TypedStorage")
        case ("torch", "per_tensor_affine"), ("torch", "per_tensor_symmetric"), ("torch", "per_channel_affine"),
             ("torch", "per_channel_symmetric"), ("torch", "per_channel_affine_float_qparams"):
            return .qscheme(name)
        default: break
        }
        if module == "torch" || module == "torch.cuda" {
            if let t = TorchScalarType(dtypeName: name), module == "torch", t.name == name || name == "float" || name == "double" || name == "half" || name == "long" || name == "int" || name == "short" || name == "cfloat" || name == "cdouble" || name == "chalf" {
                return .dtype(t)
            }
            if TorchScalarType(storageClass: name) != nil { return .storageClass(module == "torch" ? name : "cuda.\(name)") }
            if tensorClassNames.contains(name) { return .tensorClass(isParameter: false) }
        }
        if torchScript {
            if module == "__torch__" || module.hasPrefix("__torch__.") { return .scriptClass("\(module).\(name)") }
            if module == "torch.jit._pickle", jitHelpers.contains(name) { return .jitHelper(name) }
        }
        return nil
    }

    static let tensorClassNames: Set<String> = [
        "DoubleTensor", "FloatTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor",
        "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
    ]

    static let jitHelpers: Set<String> = [
        "restore_type_tag", "build_intlist", "build_doublelist", "build_boollist", "build_tensorlist",
        "build_tensor_from_id",
    ]
}
