#ifndef DLKIT_CIMAGECODECS_H
#define DLKIT_CIMAGECODECS_H
// PNG and JPEG decoding through libpng and libjpeg-turbo. Both libraries report errors by
// longjmp, which must not cross Swift frames, so the whole decode happens in C behind these two
// calls. Private to DLImage.
#include <stddef.h>
#include <stdint.h>

// Decodes `size` bytes to 8-bit interleaved pixels with `channels` channels (1 gray, 3 RGB).
// Images of more than `max_pixels` pixels are refused before anything is allocated.
// On success returns 0 and sets *out (malloc'd, free with dl_image_free), *width, *height.
// On failure returns non-zero and writes a message (NUL-terminated) into err.
int dl_png_decode(const uint8_t *data, size_t size, int channels, size_t max_pixels,
                  uint8_t **out, int *width, int *height, char *err, size_t err_size);
int dl_jpeg_decode(const uint8_t *data, size_t size, int channels, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size);
void dl_image_free(uint8_t *pixels);

#endif
