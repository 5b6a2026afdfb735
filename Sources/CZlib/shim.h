#include <zlib.h>

/* deflateInit2/inflateInit2 are macros; Swift needs functions. */
static inline int berth_deflate_init_gzip(z_streamp stream) {
    return deflateInit2(stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

static inline int berth_inflate_init_gzip(z_streamp stream) {
    return inflateInit2(stream, 15 + 16);
}
