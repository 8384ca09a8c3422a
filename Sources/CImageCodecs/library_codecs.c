// TIFF, WebP and JPEG 2000 through libtiff, libwebp and libopenjp2, each from memory to 8-bit
// RGB. None of the three longjmps; each reports errors through a callback or a status, caught
// here into the caller's message buffer (per call, so decodes on several threads do not mix).
#include "CImageCodecs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openjpeg-2.5/openjpeg.h>
#include <tiffio.h>
#include <webp/decode.h>

static void say(char *err, size_t n, const char *msg) {
    if (err && n) { snprintf(err, n, "%s", msg); }
}

// The largest single allocation a decoder library may make while reading one image.
#define LIBRARY_ALLOC_LIMIT ((size_t)1 << 30)

// ---- TIFF ----

struct memory_file { const uint8_t *data; size_t size, pos; };
struct tiff_message { char text[200]; };

static tmsize_t tiff_read(thandle_t h, void *dst, tmsize_t n) {
    struct memory_file *f = (struct memory_file *)h;
    if (n <= 0 || f->pos >= f->size) { return 0; }
    size_t k = (size_t)n < f->size - f->pos ? (size_t)n : f->size - f->pos;
    memcpy(dst, f->data + f->pos, k);
    f->pos += k;
    return (tmsize_t)k;
}

static tmsize_t tiff_write(thandle_t h, void *src, tmsize_t n) { (void)h; (void)src; (void)n; return -1; }

static toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
    struct memory_file *f = (struct memory_file *)h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->pos : f->size;
    if (off > UINT64_MAX - base) { return (toff_t)-1; }
    // Past the end is allowed (as for a file); reads there return nothing.
    f->pos = (size_t)(base + off);
    return (toff_t)f->pos;
}

static int tiff_close(thandle_t h) { (void)h; return 0; }
static toff_t tiff_size(thandle_t h) { return ((struct memory_file *)h)->size; }
static int tiff_map(thandle_t h, void **base, toff_t *size) { (void)h; (void)base; (void)size; return 0; }
static void tiff_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)module;
    struct tiff_message *m = (struct tiff_message *)user;
    // The first error says what went wrong; later ones are its consequences.
    if (!m->text[0]) { vsnprintf(m->text, sizeof m->text, fmt, ap); }
    return 1;
}

static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
    return 1;
}

int dl_tiff_decode(const uint8_t *data, size_t size, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size) {
    *out = NULL;
    struct memory_file file = { data, size, 0 };
    struct tiff_message message = { { 0 } };
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) { say(err, err_size, "libtiff could not start"); return 1; }
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, (tmsize_t)LIBRARY_ALLOC_LIMIT);
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_on_error, &message);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_on_warning, NULL);
    // "rm": read only, never memory-map (the bytes are already in memory).
    TIFF *tif = TIFFClientOpenExt("tiff", "rm", (thandle_t)&file, tiff_read, tiff_write, tiff_seek, tiff_close,
                                  tiff_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif) { say(err, err_size, message.text[0] ? message.text : "not a readable TIFF"); return 1; }
    int status = 1;
    uint32_t *raster = NULL;
    uint8_t *pixels = NULL;
    uint32_t w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    char why[1024] = { 0 };
    if (w == 0 || h == 0 || (size_t)w > max_pixels / h) {
        snprintf(why, sizeof why, "the image is larger than allowed");
        goto done;
    }
    if (!TIFFRGBAImageOK(tif, why)) { goto done; }
    // As Pillow reads a TIFF: the orientation tag is not applied, and alpha is neither
    // premultiplied nor used (it is dropped). libtiff's RGBA reader would rotate by the tag and
    // premultiply unassociated alpha, so the directory in memory says top-left and associated.
    TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    uint16_t extra_count = 0;
    uint16_t *extra = NULL;
    if (TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra) && extra_count > 0 && extra_count <= 16) {
        uint16_t associated[16];
        for (uint16_t i = 0; i < extra_count; i++) {
            associated[i] = extra[i] == EXTRASAMPLE_UNASSALPHA ? EXTRASAMPLE_ASSOCALPHA : extra[i];
        }
        TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, extra_count, associated);
    }
    TIFFRGBAImage img;
    if (!TIFFRGBAImageBegin(&img, tif, 0, why)) { goto done; }
    img.req_orientation = ORIENTATION_TOPLEFT;
    raster = malloc((size_t)w * h * sizeof(uint32_t));
    if (!raster) {
        TIFFRGBAImageEnd(&img);
        snprintf(why, sizeof why, "out of memory");
        goto done;
    }
    int got = TIFFRGBAImageGet(&img, raster, w, h);
    TIFFRGBAImageEnd(&img);
    if (!got || message.text[0]) {
        snprintf(why, sizeof why, "%s", message.text[0] ? message.text : "libtiff could not read the pixels");
        goto done;
    }
    pixels = malloc((size_t)w * h * 3);
    if (!pixels) { snprintf(why, sizeof why, "out of memory"); goto done; }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        pixels[3 * i] = (uint8_t)TIFFGetR(raster[i]);
        pixels[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
        pixels[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
    }
    status = 0;
done:
    free(raster);
    TIFFClose(tif);
    if (status != 0) {
        say(err, err_size, message.text[0] ? message.text : why[0] ? why : "malformed TIFF");
        return 1;
    }
    *out = pixels;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

// ---- WebP ----

static const char *webp_status(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the data ends inside the image";
    default: return "malformed WebP";
    }
}

int dl_webp_decode(const uint8_t *data, size_t size, size_t max_pixels,
                   uint8_t **out, int *width, int *height, char *err, size_t err_size) {
    *out = NULL;
    WebPBitstreamFeatures features;
    VP8StatusCode s = WebPGetFeatures(data, size, &features);
    if (s != VP8_STATUS_OK) { say(err, err_size, webp_status(s)); return 1; }
    if (features.has_animation) { say(err, err_size, "an animated WebP (only still images are decoded)"); return 1; }
    int w = features.width, h = features.height;
    if (w <= 0 || h <= 0 || (size_t)w > max_pixels / (size_t)h) { say(err, err_size, "the image is larger than allowed"); return 1; }
    uint8_t *pixels = malloc((size_t)w * h * 3);
    if (!pixels) { say(err, err_size, "out of memory"); return 1; }
    // Decoded into our buffer, RGB: alpha (if any) is dropped, not blended, as Pillow's
    // convert("RGB") does.
    if (!WebPDecodeRGBInto(data, size, pixels, (size_t)w * h * 3, w * 3)) {
        free(pixels);
        s = WebPGetFeatures(data, size, &features);
        say(err, err_size, s == VP8_STATUS_OK ? "the image data is corrupt or ends early" : webp_status(s));
        return 1;
    }
    *out = pixels;
    *width = w;
    *height = h;
    return 0;
}

// ---- JPEG 2000 ----

struct jp2_message { char text[200]; };

static void jp2_on_error(const char *msg, void *user) {
    struct jp2_message *m = (struct jp2_message *)user;
    if (!m->text[0]) {
        snprintf(m->text, sizeof m->text, "%s", msg);
        size_t n = strlen(m->text);
        while (n > 0 && (m->text[n - 1] == '\n' || m->text[n - 1] == '\r')) { m->text[--n] = 0; }
    }
}

static void jp2_quiet(const char *msg, void *user) { (void)msg; (void)user; }

static OPJ_SIZE_T jp2_read(void *dst, OPJ_SIZE_T n, void *user) {
    struct memory_file *f = (struct memory_file *)user;
    if (f->pos >= f->size) { return (OPJ_SIZE_T)-1; }
    size_t k = n < f->size - f->pos ? n : f->size - f->pos;
    memcpy(dst, f->data + f->pos, k);
    f->pos += k;
    return k;
}

static OPJ_OFF_T jp2_skip(OPJ_OFF_T n, void *user) {
    struct memory_file *f = (struct memory_file *)user;
    if (n < 0) {
        if ((size_t)(-n) > f->pos) { return -1; }
        f->pos -= (size_t)(-n);
        return n;
    }
    size_t room = f->size > f->pos ? f->size - f->pos : 0;
    size_t k = (size_t)n < room ? (size_t)n : room;
    f->pos += k;
    return (OPJ_OFF_T)k;
}

static OPJ_BOOL jp2_seek(OPJ_OFF_T n, void *user) {
    struct memory_file *f = (struct memory_file *)user;
    if (n < 0 || (uint64_t)n > f->size) { return OPJ_FALSE; }
    f->pos = (size_t)n;
    return OPJ_TRUE;
}

// One component sample to 8 bits as Pillow does: signed samples offset to unsigned, then shifted
// from the component's precision to 8 bits.
static uint8_t jp2_sample(const opj_image_comp_t *c, size_t i) {
    int64_t v = (int64_t)c->data[i] + (c->sgnd && c->prec > 0 ? ((int64_t)1 << (c->prec - 1)) : 0);
    int shift = 8 - (int)c->prec;
    v = shift >= 0 ? v << shift : v >> -shift;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int dl_jp2_decode(const uint8_t *data, size_t size, size_t max_pixels,
                  uint8_t **out, int *width, int *height, char *err, size_t err_size) {
    *out = NULL;
    static const uint8_t jp2_signature[12] = { 0, 0, 0, 12, 'j', 'P', ' ', ' ', 13, 10, 0x87, 10 };
    OPJ_CODEC_FORMAT format;
    if (size >= 12 && memcmp(data, jp2_signature, 12) == 0) {
        format = OPJ_CODEC_JP2;
    } else if (size >= 4 && data[0] == 0xFF && data[1] == 0x4F && data[2] == 0xFF && data[3] == 0x51) {
        format = OPJ_CODEC_J2K;
    } else {
        say(err, err_size, "not JPEG 2000 (no JP2 signature box or codestream marker)");
        return 1;
    }
    struct memory_file file = { data, size, 0 };
    struct jp2_message message = { { 0 } };
    opj_codec_t *codec = opj_create_decompress(format);
    opj_stream_t *stream = opj_stream_create(1 << 16, OPJ_TRUE);
    opj_image_t *image = NULL;
    uint8_t *pixels = NULL;
    const char *why = NULL;
    size_t w = 0, h = 0;
    if (!codec || !stream) { why = "libopenjp2 could not start"; goto done; }
    opj_set_error_handler(codec, jp2_on_error, &message);
    opj_set_warning_handler(codec, jp2_quiet, NULL);
    opj_set_info_handler(codec, jp2_quiet, NULL);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(codec, &params)) { why = "libopenjp2 refused the decoder setup"; goto done; }
    opj_stream_set_user_data(stream, &file, NULL);
    opj_stream_set_user_data_length(stream, size);
    opj_stream_set_read_function(stream, jp2_read);
    opj_stream_set_skip_function(stream, jp2_skip);
    opj_stream_set_seek_function(stream, jp2_seek);
    if (!opj_read_header(stream, codec, &image) || !image) { why = "the header cannot be read"; goto done; }
    if (image->x1 <= image->x0 || image->y1 <= image->y0) { why = "the image is empty"; goto done; }
    w = image->x1 - image->x0;
    h = image->y1 - image->y0;
    // Checked before decoding: the header's size is what libopenjp2 allocates for.
    if (w > max_pixels / h) { why = "the image is larger than allowed"; goto done; }
    if (image->numcomps == 0 || image->numcomps > 4) { why = "only 1 to 4 components are decoded"; goto done; }
    if (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream)) { why = "the image data cannot be decoded"; goto done; }
    if (image->color_space == OPJ_CLRSPC_SYCC || image->color_space == OPJ_CLRSPC_EYCC || image->color_space == OPJ_CLRSPC_CMYK) {
        why = "YCC or CMYK JPEG 2000 is not decoded";
        goto done;
    }
    int color = image->numcomps >= 3;
    for (OPJ_UINT32 k = 0; k < (color ? 3u : 1u); k++) {
        const opj_image_comp_t *c = &image->comps[k];
        if (!c->data || c->w != w || c->h != h || c->dx != 1 || c->dy != 1 || c->prec == 0 || c->prec > 31) {
            why = "subsampled components are not decoded";
            goto done;
        }
    }
    pixels = malloc(w * h * 3);
    if (!pixels) { why = "out of memory"; goto done; }
    for (size_t i = 0; i < w * h; i++) {
        for (int k = 0; k < 3; k++) { pixels[3 * i + k] = jp2_sample(&image->comps[color ? k : 0], i); }
    }
done:
    if (image) { opj_image_destroy(image); }
    if (stream) { opj_stream_destroy(stream); }
    if (codec) { opj_destroy_codec(codec); }
    if (why) {
        free(pixels);
        say(err, err_size, message.text[0] ? message.text : why);
        return 1;
    }
    *out = pixels;
    *width = (int)w;
    *height = (int)h;
    return 0;
}
