// vision/image/image_header.h: an encoded image's width and height, read from its header
// without decoding it, so oversized images are refused before any pixel memory is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace attnkit::vision {

/// Width and height as the file's header declares them.
struct ImageDimensions {
  int64_t width = 0;
  int64_t height = 0;
};

/// Reads the declared size of a PNG (IHDR), JPEG (first SOFn), BMP (DIB header), WebP (VP8,
/// VP8L or VP8X), PNM (P1-P6) or TIFF / BigTIFF (first IFD) image, the way the decoder under
/// OpenCV reads it (libjpeg's marker walk, OpenCV's PxM number reader, libtiff's integer types),
/// so the size checked is the size that will be allocated. Returns nothing for other formats and
/// for headers too short or too broken to hold a size: such bytes are not given to a decoder.
std::optional<ImageDimensions> read_image_dimensions(const unsigned char* bytes, size_t size);

}  // namespace attnkit::vision
