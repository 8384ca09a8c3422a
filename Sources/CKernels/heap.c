// Heap settings for processes that allocate and free the same large blocks over and over.
#include "ckernels.h"

#if defined(__GLIBC__)
#include <malloc.h>

int dlk_heap_keep_freed(long mmap_min, long trim_min) {
    if (mmap_min <= 0 || trim_min <= 0 || mmap_min > 0x7fffffffL || trim_min > 0x7fffffffL) return 0;
    const int a = mallopt(M_MMAP_THRESHOLD, (int)mmap_min);
    const int b = mallopt(M_TRIM_THRESHOLD, (int)trim_min);
    return a == 1 && b == 1;
}
#else
int dlk_heap_keep_freed(long mmap_min, long trim_min) {
    (void)mmap_min; (void)trim_min;
    return 0;
}
#endif
