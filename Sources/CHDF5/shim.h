#ifndef DLKIT_CHDF5_SHIM_H
#define DLKIT_CHDF5_SHIM_H
#include <hdf5.h>

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
#endif
