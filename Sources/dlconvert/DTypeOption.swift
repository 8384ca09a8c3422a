import DLKit

/// The dtype `--dtype` names, or nil when the option is absent.
func parseDType(_ name: String?) throws(DLKitError) -> DType? {
    guard let name else { return nil }
    let aliases = ["fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp64": "float64", "double": "float64", "float": "float32"]
    guard let d = DType(rawValue: aliases[name.lowercased()] ?? name.lowercased()), d.isFloatingPoint else {
        throw .invalidArgument("--dtype \(name): use float32, float16, bfloat16 or float64")
    }
    return d
}
