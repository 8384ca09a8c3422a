#ifndef DLKIT_CIMAGECODECS_H
#define DLKIT_CIMAGECODECS_H
// PNG and JPEG decoding through libpng and libjpeg-turbo, TIFF, WebP and JPEG 2000 through
// libtiff, libwebp and libopenjp2. libpng and libjpeg report errors by longjmp, which must not
// cross Swift frames, so each whole decode happens in C behind one call. Private to DLImage.
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
// TIFF, WebP and JPEG 2000 (JP2 file or raw J2K codestream) to 8-bit RGB (3 channels), alpha
// dropped, gray replicated; same contract otherwise.
int dl_tiff_decode(const uint8_t *data, size_t size, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size);
int dl_webp_decode(const uint8_t *data, size_t size, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size);
int dl_jp2_decode(const uint8_t *data, size_t size, size_t max_pixels,
                  uint8_t **out, int *width, int *height, char *err, size_t err_size);
void dl_image_free(uint8_t *pixels);

#endif
