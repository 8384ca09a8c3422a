#include "onnx.pb-c.h"
#include "tensorboard.pb-c.h"
