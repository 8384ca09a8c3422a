#include "CImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

void dl_image_free(uint8_t *pixels) { free(pixels); }

static void say(char *err, size_t n, const char *msg) {
    if (err && n) { snprintf(err, n, "%s", msg); }
}

// ---- PNG ----

struct png_source { const uint8_t *data; size_t size, pos; };
struct png_failure { jmp_buf jump; char message[200]; };

static void png_read_bytes(png_structp png, png_bytep dst, png_size_t n) {
    struct png_source *src = (struct png_source *)png_get_io_ptr(png);
    if (n > src->size - src->pos) { png_error(png, "the data ends inside the image"); }
    memcpy(dst, src->data + src->pos, n);
    src->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    struct png_failure *f = (struct png_failure *)png_get_error_ptr(png);
    snprintf(f->message, sizeof f->message, "%s", msg);
    longjmp(f->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int dl_png_decode(const uint8_t *data, size_t size, int channels, size_t max_pixels,
                  uint8_t **out, int *width, int *height, char *err, size_t err_size) {
    *out = NULL;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) { say(err, err_size, "not a PNG (no signature)"); return 1; }
    struct png_failure failure;
    failure.message[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, png_on_error, png_on_warning);
    if (!png) { say(err, err_size, "libpng could not start"); return 1; }
    png_infop info = png_create_info_struct(png);
    struct png_source src = { data, size, 0 };
    // volatile: read after longjmp.
    uint8_t *volatile pixels = NULL, *volatile wide = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(failure.jump)) {
        free(pixels);
        free(wide);
        free(rows);
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        say(err, err_size, failure.message[0] ? failure.message : "malformed PNG");
        return 1;
    }
    png_set_read_fn(png, &src, png_read_bytes);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || (size_t)w > max_pixels / h) {
        png_error(png, "the image is larger than allowed");
    }
    int color = png_get_color_type(png, info);
    // Pillow (torchvision's loader, the ImageDecoder reference) opens 16-bit gray as integers
    // (mode I;16) and makes 8-bit gray or RGB of them by clipping at 255, not by scaling: read the
    // samples whole and clip them alike. Every other layout goes to 8-bit gray or RGB without
    // alpha by libpng's transforms (16-bit colour keeps the high byte, as Pillow does).
    int gray16 = color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) == 16;
    if (!gray16) {
        png_set_strip_16(png);
        png_set_packing(png);
        if (color == PNG_COLOR_TYPE_PALETTE) { png_set_palette_to_rgb(png); }
        if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) { png_set_expand_gray_1_2_4_to_8(png); }
        if (png_get_valid(png, info, PNG_INFO_tRNS)) { png_set_tRNS_to_alpha(png); }
        png_set_strip_alpha(png);
        int gray = !(color & PNG_COLOR_MASK_COLOR) && color != PNG_COLOR_TYPE_PALETTE;
        if (channels == 3 && gray) { png_set_gray_to_rgb(png); }
        if (channels == 1 && !gray) { png_set_rgb_to_gray_fixed(png, 1, -1, -1); }
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t read_channels = gray16 ? 1 : (size_t)channels, read_bytes = gray16 ? 2 : 1;
    if (png_get_channels(png, info) != read_channels || png_get_rowbytes(png, info) != (size_t)w * read_channels * read_bytes) {
        png_error(png, "unexpected pixel layout after conversion");
    }
    pixels = malloc((size_t)w * h * channels);
    if (gray16) { wide = malloc((size_t)w * h * 2); }
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows || (gray16 && !wide)) { png_error(png, "out of memory"); }
    uint8_t *target = gray16 ? wide : pixels;
    size_t row_bytes = (size_t)w * read_channels * read_bytes;
    for (png_uint_32 y = 0; y < h; y++) { rows[y] = target + (size_t)y * row_bytes; }
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (gray16) {
        for (size_t i = 0; i < (size_t)w * h; i++) {
            unsigned v = (unsigned)wide[2 * i] << 8 | wide[2 * i + 1];  // big-endian in the file
            uint8_t b = v > 255 ? 255 : (uint8_t)v;
            for (int k = 0; k < channels; k++) { pixels[i * (size_t)channels + k] = b; }
        }
        free(wide);
    }
    *out = pixels;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

// ---- JPEG ----

struct jpeg_failure { struct jpeg_error_mgr base; jmp_buf jump; char message[JMSG_LENGTH_MAX]; };

static void jpeg_on_error(j_common_ptr cinfo) {
    struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, f->message);
    longjmp(f->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo) { (void)cinfo; }

// libjpeg only warns about corrupt or missing data (and fills in gray); a training set should not
// learn from that, so the first warning fails the decode, right away: a few bytes claiming a huge
// image used to be decoded in full, warning on every row, before being refused.
static void jpeg_on_emit(j_common_ptr cinfo, int level) {
    if (level >= 0) { return; }  // trace messages
    struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
    char what[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, what);
    snprintf(f->message, sizeof f->message, "corrupt JPEG data: %s", what);
    longjmp(f->jump, 1);
}

// Each progressive scan passes over the whole image's coefficients; a real file has about ten.
// A crafted one can hold thousands of tiny scans of a large image (libjpeg-turbo's own
// decompressor caps them at 500 when asked to; so do we, always).
enum { jpeg_max_scans = 500 };

static void jpeg_on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->progressive_mode && d->input_scan_number > jpeg_max_scans) {
        struct jpeg_failure *f = (struct jpeg_failure *)cinfo->err;
        snprintf(f->message, sizeof f->message, "more than %d progressive scans", jpeg_max_scans);
        longjmp(f->jump, 1);
    }
}

// A CMYK (or YCCK, which libjpeg turns into CMYK) row to RGB or gray as Pillow converts it, for
// the same pixels as torchvision's loader and ONNX's ImageDecoder reference: the stored values
// taken as Adobe writes them (inverted), then each of R, G, B = (255 - K)(255 - C) / 255 rounded
// as Pillow's MULDIV255, and gray Pillow's L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
static void jpeg_cmyk_row(const uint8_t *in, uint8_t *out, JDIMENSION width, int channels) {
    for (JDIMENSION x = 0; x < width; x++) {
        const uint8_t *p = in + (size_t)x * 4;
        int nk = p[3], rgb[3];
        for (int i = 0; i < 3; i++) {
            int t = (255 - p[i]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            rgb[i] = v < 0 ? 0 : v;
        }
        if (channels == 1) {
            out[x] = (uint8_t)((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
        } else {
            for (int i = 0; i < 3; i++) { out[(size_t)x * 3 + i] = (uint8_t)rgb[i]; }
        }
    }
}

int dl_jpeg_decode(const uint8_t *data, size_t size, int channels, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size) {
    *out = NULL;
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) { say(err, err_size, "not a JPEG (no SOI marker)"); return 1; }
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure failure;
    cinfo.err = jpeg_std_error(&failure.base);
    failure.base.error_exit = jpeg_on_error;
    failure.base.output_message = jpeg_on_message;
    failure.base.emit_message = jpeg_on_emit;
    struct jpeg_progress_mgr progress = { .progress_monitor = jpeg_on_progress };
    failure.message[0] = 0;
    uint8_t *volatile pixels = NULL, *volatile cmyk_row = NULL;
    if (setjmp(failure.jump)) {
        free(pixels);
        free(cmyk_row);
        jpeg_destroy_decompress(&cinfo);
        say(err, err_size, failure.message[0] ? failure.message : "malformed JPEG");
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    // libjpeg converts CMYK and YCCK only to CMYK: those rows go through jpeg_cmyk_row.
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    JDIMENSION w = cinfo.output_width, h = cinfo.output_height;
    if (w == 0 || h == 0 || (size_t)w > max_pixels / h) {
        snprintf(failure.message, sizeof failure.message, "the image is larger than allowed");
        longjmp(failure.jump, 1);
    }
    if (cinfo.output_components != (cmyk ? 4 : channels)) {
        snprintf(failure.message, sizeof failure.message, "unexpected component count %d", cinfo.output_components);
        longjmp(failure.jump, 1);
    }
    pixels = malloc((size_t)w * h * channels);
    if (!pixels) {
        snprintf(failure.message, sizeof failure.message, "out of memory");
        longjmp(failure.jump, 1);
    }
    if (cmyk && !(cmyk_row = malloc((size_t)w * 4))) {
        snprintf(failure.message, sizeof failure.message, "out of memory");
        longjmp(failure.jump, 1);
    }
    while (cinfo.output_scanline < h) {
        uint8_t *line = pixels + (size_t)cinfo.output_scanline * w * channels;
        JSAMPROW row = cmyk ? cmyk_row : line;
        if (jpeg_read_scanlines(&cinfo, &row, 1) == 1 && cmyk) { jpeg_cmyk_row(cmyk_row, line, w, channels); }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    *out = pixels;
    *width = (int)w;
    *height = (int)h;
    return 0;
}
