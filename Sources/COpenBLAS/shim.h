#ifndef DLKIT_COPENBLAS_SHIM_H
#define DLKIT_COPENBLAS_SHIM_H
#include <cblas.h>

/* Declared by OpenBLAS but not always in cblas.h. */
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);
#endif
