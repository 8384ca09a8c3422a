#include "tensorflow.pb-c.h"
