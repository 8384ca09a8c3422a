// What users of training get with `import DLKit`.
@_exported import DLTraining
@_exported import struct DLCheckpoint.TrainingState
