#ifndef DLKIT_CPROTOBUFC_SHIM_H
#define DLKIT_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
