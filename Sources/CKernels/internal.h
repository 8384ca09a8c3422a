// Shared plumbing of the C kernels (private to CKernels: not under include/).
#ifndef DLKIT_CKERNELS_INTERNAL_H
#define DLKIT_CKERNELS_INTERNAL_H

#include <stddef.h>

/// Per-thread scratch slots: a kernel that calls another kernel uses a slot of its own.
enum { DLK_SCRATCH_GEMM = 0, DLK_SCRATCH_ATTENTION = 1, DLK_SCRATCH_CONV = 2, DLK_SCRATCH_DEPTHWISE = 3, DLK_SCRATCH_PANEL = 4, DLK_SCRATCH_SLOTS = 5 };

/// At least `bytes` of 64-byte aligned memory owned by this thread in `slot`, grown on demand and
/// kept (steady-state calls allocate nothing), freed when the thread ends; NULL when memory
/// could not be had.
void *dlk_scratch(int slot, size_t bytes);

#endif
