#ifndef DLKIT_CHDF5_SHIM_H
#define DLKIT_CHDF5_SHIM_H
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

/* HDF5 exposes these as macros (some expand to a library call plus a global), which Swift cannot
   import. Each wrapper returns what the macro evaluates to. */
static inline hid_t dlk_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline unsigned dlk_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned dlk_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned dlk_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned dlk_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hid_t dlk_H5S_ALL(void) { return H5S_ALL; }
static inline hsize_t dlk_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }
static inline hid_t dlk_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dlk_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dlk_H5T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
static inline hid_t dlk_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dlk_H5T_NATIVE_INT16(void) { return H5T_NATIVE_INT16; }
static inline hid_t dlk_H5T_NATIVE_UINT16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t dlk_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t dlk_H5T_NATIVE_UINT32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t dlk_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dlk_H5T_NATIVE_UINT64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t dlk_H5T_C_S1(void) { return H5T_C_S1; }
static inline size_t dlk_H5T_VARIABLE(void) { return H5T_VARIABLE; }
/* Error reporting: H5E_DEFAULT names the calling thread's default error stack. */
static inline hid_t dlk_H5E_DEFAULT(void) { return H5E_DEFAULT; }
/* Turns off libhdf5's printing of its error stack to stderr (callers read the stack instead). */
static inline herr_t dlk_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
static inline hid_t dlk_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t dlk_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t dlk_H5T_STD_U16LE(void) { return H5T_STD_U16LE; }
static inline hid_t dlk_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t dlk_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }

/* The first (API-level) and last (innermost) descriptions on the default error stack, joined as
   "first: last" into buf (empty when the stack is empty). */
typedef struct { char *buf; size_t cap; char first[256]; char last[256]; unsigned count; } dlk_error_text;
static herr_t dlk_error_walk(unsigned n, const H5E_error2_t *e, void *data) {
    dlk_error_text *t = (dlk_error_text *)data;
    const char *d = (e && e->desc) ? e->desc : "";
    if (n == 0) { snprintf(t->first, sizeof t->first, "%s", d); }
    snprintf(t->last, sizeof t->last, "%s", d);
    t->count += 1;
    return 0;
}
static inline void dlk_error_message(char *buf, size_t cap) {
    dlk_error_text t; t.buf = buf; t.cap = cap; t.first[0] = 0; t.last[0] = 0; t.count = 0;
    if (cap == 0) return;
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, dlk_error_walk, &t);
    if (t.count > 1 && strcmp(t.first, t.last) != 0) snprintf(buf, cap, "%s: %s", t.first, t.last);
    else snprintf(buf, cap, "%s", t.first);
    H5Eclear2(H5E_DEFAULT);
}
#endif
