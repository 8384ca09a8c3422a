import DLKeras
import DLSupport
import DLTensor
import Testing

/// Hostile model_config JSON (issue 17, item 4): layer builders check the ranks and sizes they
/// index and answer with one line naming the layer and its class, never a crash.
@Suite struct KerasHostileConfigTests {
    static func failure(_ json: String) -> String? {
        do {
            let config = try Array(json.utf8).withUnsafeBytes { b throws(JSONSyntaxError) in try JSONParser.parse(b) }
            _ = try KerasImporter.graph(from: KerasFile(config: config, path: "hostile.h5"))
            return nil
        } catch {
            return "\(error)"
        }
    }

    static func sequential(input: String, _ layer: String) -> String {
        """
        {"class_name": "Sequential", "config": {"name": "s", "layers": [
          {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": \(input)}},
          \(layer)]}}
        """
    }

    @Test(arguments: [
        // The three of the issue: each used to end dlconvert with SIGILL.
        ("[]", #"{"class_name": "Flatten", "config": {"name": "flat"}}"#, "layer 'flat' (Flatten): input 'in' has rank 0"),
        ("[null]", #"{"class_name": "GlobalAveragePooling1D", "config": {"name": "gap"}}"#, "layer 'gap' (GlobalAveragePooling1D): input 'in' has rank 1"),
        ("[null]", #"{"class_name": "GlobalMaxPooling2D", "config": {"name": "gmp"}}"#, "layer 'gmp' (GlobalMaxPooling2D): input 'in' has rank 1"),
        // Sizes that reached arithmetic or indexing unchecked.
        ("[null, 8, 3]", #"{"class_name": "MaxPooling1D", "config": {"name": "p", "pool_size": 2, "strides": 0}}"#, "layer 'p' (MaxPooling1D): 'strides' [0]"),
        ("[null, 8, 3]", #"{"class_name": "Conv1D", "config": {"name": "c", "filters": -2, "kernel_size": 3}}"#, "layer 'c' (Conv1D): 'filters' is -2"),
        ("[null, 4]", #"{"class_name": "Reshape", "config": {"name": "r", "target_shape": [-1, -1]}}"#, "layer 'r' (Reshape): target_shape"),
        ("[null, 2, 3]", #"{"class_name": "Permute", "config": {"name": "pm", "dims": [7, 1]}}"#, "layer 'pm' (Permute): dims must be a permutation"),
        ("[null, 2, 3]", #"{"class_name": "Concatenate", "config": {"name": "cc", "axis": 9}}"#, "layer 'cc' (Concatenate): axis 9"),
        ("[null, 3]", #"{"class_name": "RepeatVector", "config": {"name": "rv", "n": -1}}"#, "layer 'rv' (RepeatVector): 'n' is -1"),
        ("[null, 4, 3]", #"{"class_name": "Cropping1D", "config": {"name": "cr", "cropping": [3, 3]}}"#, "layer 'cr' (Cropping1D): its output would have a dimension of -2"),
        ("[null, 4294967296]", #"{"class_name": "Flatten", "config": {"name": "f"}}"#, "layer 'in' (InputLayer): input dimension 4294967296"),
        ("[null, 2147483647]", #"{"class_name": "LayerNormalization", "config": {"name": "ln", "scale": false, "center": false}}"#, "layer 'ln' (LayerNormalization): 2147483647 channels"),
        ("[null, 2, 2]", #"{"class_name": "TimeDistributed", "config": {"name": "td", "layer": {"class_name": "Dense", "config": {"name": "d", "units": 0}}}}"#, "layer 'td' (Dense): 'units' is 0"),
    ])
    func isRefusedInOneLine(input: String, layer: String, expected: String) {
        let m = Self.failure(Self.sequential(input: input, layer))
        #expect(m?.contains(expected) == true, "\(m ?? "accepted")")
        #expect(m?.contains("\n") == false)
    }
}
