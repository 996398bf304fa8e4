// vision/image/image_io.h: validated image loading and atomic image writing (OpenCV).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

namespace attnkit::vision {

/// The pixel limit images are held to unless the caller or `set_max_image_pixels` says
/// otherwise: 100 megapixels, about 300 MB of RGB (a 27000x27000 PNG of 708 KB would need
/// 2.2 GB just to decode).
constexpr int64_t kDefaultMaxImagePixels = 100'000'000;

/// The process-wide pixel limit (`--max-pixels`); kDefaultMaxImagePixels until set.
int64_t max_image_pixels();
/// Sets the process-wide pixel limit; `pixels` must be positive.
void set_max_image_pixels(int64_t pixels);

/// How a user of this program raises the limit (the attn program: "--max-pixels"), added to the
/// too-large message in parentheses; the library itself names no option. `hint` must outlive
/// every load (a string literal); nullptr removes it.
void set_pixel_limit_hint(const char* hint);

/// Loads `path` as 8-bit RGB (3 channels, HxWx3, CV_8UC3), applying EXIF orientation. Grey
/// images are expanded to RGB and alpha is dropped (as PIL's convert("RGB") does). Decodes PNG,
/// JPEG, WebP, BMP, TIFF (BigTIFF too) and PNM (P1-P6): the formats whose size is read from
/// the header (vision/image/image_header.h) before anything is decoded. Throws ImageError
/// naming the file and the problem: missing, a directory, unreadable, empty, another format
/// ("JPEG 2000 is not supported (convert it to PNG or JPEG)"), not decodable
/// ("not a decodable image (PNG signature broken)", "... (truncated JPEG data)", ...), or
/// larger than `max_pixels` (0 = max_image_pixels()).
/// The decoders' own stderr chatter ("libpng error: ...") is kept off the terminal.
cv::Mat load_image_rgb(const std::string& path, int64_t max_pixels = 0);

/// Decodes an in-memory encoded image the same way; `name` is used in error messages.
cv::Mat decode_image_rgb(const std::vector<unsigned char>& bytes, const std::string& name,
                         int64_t max_pixels = 0);

/// Writes an RGB (or grey) 8-bit image; the format follows the extension (.png, .jpg/.jpeg,
/// .webp, .bmp). Written to a temporary name in the same directory and renamed, so a failure
/// leaves nothing behind. Throws ImageError on an unknown extension or a failed write.
void save_image_rgb(const std::string& path, const cv::Mat& rgb);

/// Encodes an RGB (or grey) 8-bit image as save_image_rgb() writes it, in the format of
/// `path`'s extension (the file itself is not touched: "x.png" gives PNG bytes). Throws
/// ImageError as save_image_rgb() does.
std::vector<unsigned char> encode_image_rgb(const cv::Mat& rgb, const std::string& path);

/// True when save_image_rgb() can write this extension (.png .jpg .jpeg .webp .bmp, any case).
bool has_writable_image_extension(const std::string& path);

/// The file name's extension in lower case, with its dot (".png"); "" when it has none.
std::string lower_extension(const std::string& path);

/// Writes `bytes` through an AtomicFile (vision/atomic_file.h: temporary, fsync, rename), so
/// readers never see a half-written file. Throws ImageError naming `path` when the write fails.
void write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes);

/// True when the file name has the extension of a still image: the formats load_image_rgb()
/// decodes, and those it names as unsupported, so a folder walk reports them instead of
/// skipping them silently
/// (.jpg .jpeg .png .bmp .webp .tif .tiff .ppm .pgm .pbm .pnm .pxm .sr .ras .jp2 .exr .hdr .pic).
bool has_image_extension(const std::string& path);

}  // namespace attnkit::vision
