// vision/image/image_io.cpp: image files to RGB8 with precise errors, and atomic image writes.
#include "vision/image/image_io.h"
#include "vision/stderr_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vision/atomic_file.h"
#include "vision/errors.h"
#include "vision/image/image_header.h"

namespace attnkit::vision {
namespace {

namespace fs = std::filesystem;

enum class Format { kUnknown, kPng, kJpeg, kGif, kWebp, kBmp, kTiff, kPnm };

const char* format_name(Format format) {
  switch (format) {
    case Format::kPng:
      return "PNG";
    case Format::kJpeg:
      return "JPEG";
    case Format::kGif:
      return "GIF";
    case Format::kWebp:
      return "WebP";
    case Format::kBmp:
      return "BMP";
    case Format::kTiff:
      return "TIFF";
    case Format::kPnm:
      return "PNM";
    case Format::kUnknown:
      break;
  }
  return "unknown";
}

Format format_from_extension(const std::string& ext) {
  if (ext == ".png") return Format::kPng;
  if (ext == ".jpg" || ext == ".jpeg" || ext == ".jpe") return Format::kJpeg;
  if (ext == ".gif") return Format::kGif;
  if (ext == ".webp") return Format::kWebp;
  if (ext == ".bmp") return Format::kBmp;
  if (ext == ".tif" || ext == ".tiff") return Format::kTiff;
  if (ext == ".ppm" || ext == ".pgm" || ext == ".pbm" || ext == ".pnm") return Format::kPnm;
  return Format::kUnknown;
}

bool starts_with(const std::vector<unsigned char>& bytes, size_t offset, const char* magic,
                 size_t length) {
  return bytes.size() >= offset + length && std::memcmp(bytes.data() + offset, magic, length) == 0;
}

// Magic numbers: PNG spec section 5.2, JFIF/JPEG SOI + marker, RIFF....WEBP,
// BMP "BM", TIFF "II*\0" / "MM\0*" and BigTIFF "II+\0" / "MM\0+", Netpbm "P1".."P6" followed
// by whitespace (OpenCV's PxM signature).
Format sniff_format(const std::vector<unsigned char>& bytes) {
  if (starts_with(bytes, 0, "\x89PNG\r\n\x1a\n", 8)) return Format::kPng;
  if (starts_with(bytes, 0, "\xff\xd8\xff", 3)) return Format::kJpeg;
  if (starts_with(bytes, 0, "RIFF", 4) && starts_with(bytes, 8, "WEBP", 4)) return Format::kWebp;
  if (starts_with(bytes, 0, "BM", 2)) return Format::kBmp;
  if (starts_with(bytes, 0, "II*\0", 4) || starts_with(bytes, 0, "MM\0*", 4) ||
      starts_with(bytes, 0, "II+\0", 4) || starts_with(bytes, 0, "MM\0+", 4)) {
    return Format::kTiff;
  }
  if (bytes.size() >= 3 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6' &&
      std::isspace(bytes[2])) {
    return Format::kPnm;
  }
  return Format::kUnknown;
}

// Formats Debian's OpenCV decodes but attnkit does not, because it cannot read their size
// before the decoder allocates: named, so the error says what the file is.
const char* unsupported_format(const std::vector<unsigned char>& bytes) {
  const auto space_at = [&](size_t i) { return bytes.size() > i && std::isspace(bytes[i]); };
  if (starts_with(bytes, 0, "GIF8", 4)) return "GIF";  // OpenCV 4.6 has no GIF decoder
  if (starts_with(bytes, 0, "\0\0\0\x0cjP  \r\n\x87\n", 12) ||
      starts_with(bytes, 0, "\xff\x4f\xff\x51", 4)) {
    return "JPEG 2000";
  }
  if (starts_with(bytes, 0, "\x76\x2f\x31\x01", 4)) return "OpenEXR";
  if (starts_with(bytes, 0, "#?RADIANCE", 10) || starts_with(bytes, 0, "#?RGBE", 6)) {
    return "Radiance HDR";
  }
  if ((starts_with(bytes, 0, "PF", 2) || starts_with(bytes, 0, "Pf", 2)) && space_at(2)) {
    return "PFM";
  }
  if (starts_with(bytes, 0, "P7", 2) && space_at(2)) return "PAM";
  if (starts_with(bytes, 0, "\x59\xa6\x6a\x95", 4)) return "Sun raster";
  if (starts_with(bytes, 128, "DICM", 4)) return "DICOM";
  return nullptr;
}

// libjpeg only warns about a truncated file and OpenCV 4.6 then returns the image with its
// missing part filled grey; PIL refuses such files ("image file is truncated"). Walks the marker
// segments and entropy-coded data to check that EOI is reached before the bytes run out. Only
// running out of bytes counts: structures this walk does not understand are left to the decoder.
bool jpeg_reaches_eoi(const std::vector<unsigned char>& b) {
  const size_t n = b.size();
  size_t i = 2;  // after SOI
  bool in_scan = false;
  while (i < n) {
    if (in_scan) {
      // Entropy-coded data ends at a 0xFF that is not stuffing (FF 00) or a restart (FF D0-D7).
      if (b[i] != 0xFF) {
        ++i;
        continue;
      }
      if (i + 1 >= n) return false;
      const unsigned char next = b[i + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        i += 2;
        continue;
      }
      if (next == 0xFF) {  // fill byte before a marker
        ++i;
        continue;
      }
      in_scan = false;
    }
    if (b[i] != 0xFF) return true;
    while (i < n && b[i] == 0xFF) ++i;  // markers may be preceded by any number of fill bytes
    if (i >= n) return false;
    const unsigned char marker = b[i++];
    if (marker == 0xD9) return true;                                     // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (i + 2 > n) return false;
    const size_t length = (static_cast<size_t>(b[i]) << 8) | b[i + 1];
    if (length < 2) return true;
    i += length;
    if (i > n) return false;
    if (marker == 0xDA) in_scan = true;  // SOS: its header is followed by entropy-coded data
  }
  return false;
}

[[noreturn]] void fail(const std::string& name, const std::string& problem) {
  throw ImageError(name + ": " + problem);
}

std::atomic<int64_t> g_max_pixels{kDefaultMaxImagePixels};
std::atomic<const char*> g_pixel_limit_hint{nullptr};

std::string megapixels(double pixels) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", pixels / 1e6);
  return text;
}

// " (how to raise it)" when the program said how, else nothing.
std::string pixel_limit_hint() {
  const char* hint = g_pixel_limit_hint.load();
  return hint ? std::string(" (") + hint + ")" : std::string();
}

void check_pixel_count(int64_t width, int64_t height, int64_t max_pixels, const std::string& name) {
  if (width == 0 || height == 0) fail(name, "image has zero width or height");
  // Sizes come from untrusted headers (up to 2^32 each): compare without overflowing.
  if (width > max_pixels || height > max_pixels / width) {
    fail(name, "image is too large: " + std::to_string(width) + "x" + std::to_string(height) +
                   " (" + megapixels(static_cast<double>(width) * static_cast<double>(height)) +
                   " megapixels), the limit is " + megapixels(max_pixels) + pixel_limit_hint());
  }
}

// libpng and libjpeg print their own complaints ("libpng error: IDAT: CRC error", "Corrupt
// JPEG data: ...") straight to stderr from inside OpenCV's decoders, before attnkit's message
// says the same thing in its words. fd 2 points at /dev/null while a decoder runs; the
// process-wide stderr lock keeps two decoding threads from restoring each other's descriptor,
// and other threads' messages from going to /dev/null meanwhile.
class QuietStderr {
 public:
  QuietStderr() : lock_(lock_stderr()) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_ >= 0 && null >= 0) ::dup2(null, STDERR_FILENO);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  int saved_ = -1;
};

std::string describe_undecodable(const std::vector<unsigned char>& bytes, const std::string& name) {
  const Format content = sniff_format(bytes);
  if (content != Format::kUnknown) {
    return std::string("truncated or corrupt ") + format_name(content) + " data";
  }
  const Format claimed = format_from_extension(lower_extension(name));
  if (claimed != Format::kUnknown) return std::string(format_name(claimed)) + " signature broken";
  return "unknown format";
}

const std::vector<std::string>& readable_extensions() {
  static const std::vector<std::string> extensions = {
      ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
      ".pbm", ".pnm",  ".pxm", ".sr",  ".ras",  ".jp2", ".exr",  ".hdr", ".pic"};
  return extensions;
}

}  // namespace

int64_t max_image_pixels() { return g_max_pixels.load(); }

void set_pixel_limit_hint(const char* hint) { g_pixel_limit_hint.store(hint); }

void set_max_image_pixels(int64_t pixels) {
  if (pixels <= 0) throw std::invalid_argument("the pixel limit must be positive");
  g_max_pixels.store(pixels);
}

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool has_writable_image_extension(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp" || ext == ".bmp";
}

void write_file_atomically(const std::string& path, const std::vector<unsigned char>& bytes) {
  try {
    write_atomically(path, bytes.data(), bytes.size());
  } catch (const WriteError& e) {
    throw ImageError(e.what());
  }
}

cv::Mat decode_image_rgb(const std::vector<unsigned char>& bytes, const std::string& name,
                         int64_t max_pixels) {
  if (max_pixels <= 0) max_pixels = max_image_pixels();
  if (bytes.empty()) fail(name, "empty file");
  const Format content = sniff_format(bytes);
  if (const char* other = unsupported_format(bytes)) {
    fail(name, std::string(other) + " is not supported (convert it to PNG or JPEG)");
  }
  // The declared size decides before the decoder allocates: a small file can declare a huge
  // image, and libpng would otherwise report a 100000x100000 header as corrupt data. OpenCV
  // is only given bytes whose size this reading found, read as its decoder reads it: whatever
  // else it would decode (a raw VP8L stream, a header this reading finds no size in) could
  // allocate gigabytes before any limit is checked.
  const auto size = read_image_dimensions(bytes.data(), bytes.size());
  if (!size) fail(name, "not a decodable image (" + describe_undecodable(bytes, name) + ")");
  check_pixel_count(size->width, size->height, max_pixels, name);

  // IMREAD_COLOR gives 8-bit BGR: grey is replicated, alpha dropped (like PIL convert("RGB")),
  // and OpenCV 4.6's imdecode applies the EXIF orientation as imread does (checked: a JPEG with
  // Orientation 6 comes back rotated) unless IMREAD_IGNORE_ORIENTATION is given.
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    fail(name, "file too large (2 GiB or more)");
  }
  const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                       const_cast<unsigned char*>(bytes.data()));
  cv::Mat bgr;
  try {
    QuietStderr quiet;
    bgr = cv::imdecode(buffer, cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    bgr.release();  // some decoders throw on corrupt input instead of returning nothing
  }
  if (bgr.empty()) fail(name, "not a decodable image (" + describe_undecodable(bytes, name) + ")");
  if (content == Format::kJpeg && !jpeg_reaches_eoi(bytes)) {
    fail(name, "not a decodable image (truncated JPEG data)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat load_image_rgb(const std::string& path, int64_t max_pixels) {
  const std::string name = path.empty() ? "<empty path>" : path;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (status.type() == fs::file_type::not_found) fail(name, "no such file");
  if (error) fail(name, "cannot be accessed (" + error.message() + ")");
  if (fs::is_directory(status)) fail(name, "is a directory");
  if (!fs::is_regular_file(status)) fail(name, "not a regular file");

  std::ifstream in(path, std::ios::binary);
  if (!in) fail(name, std::string("cannot be opened (") + std::strerror(errno) + ")");
  std::vector<unsigned char> bytes;
  const std::streamoff size = in.seekg(0, std::ios::end).tellg();
  if (size > 0) {
    bytes.resize(static_cast<size_t>(size));
    in.seekg(0, std::ios::beg);
    in.read(reinterpret_cast<char*>(bytes.data()), size);
    if (in.gcount() != size) fail(name, "read error");
  }
  return decode_image_rgb(bytes, name, max_pixels);
}

std::vector<unsigned char> encode_image_rgb(const cv::Mat& rgb, const std::string& path) {
  const std::string ext = lower_extension(path);
  std::vector<int> params;
  if (!has_writable_image_extension(path)) {
    fail(path, (ext.empty() ? std::string("no image extension")
                            : "unknown image extension \"" + ext + "\"") +
                   " (use .png, .jpg, .jpeg, .webp or .bmp)");
  }
  if (ext == ".jpg" || ext == ".jpeg") params = {cv::IMWRITE_JPEG_QUALITY, 95};
  if (rgb.empty() || rgb.depth() != CV_8U || (rgb.channels() != 3 && rgb.channels() != 1)) {
    fail(path, "cannot write: expected a non-empty 8-bit RGB or grey image");
  }
  // A fresh Mat: converting into a header that shares `rgb`'s buffer would swap the caller's
  // channels in place.
  cv::Mat bgr;
  if (rgb.channels() == 3) {
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  } else {
    bgr = rgb;
  }

  std::vector<unsigned char> encoded;
  try {
    if (!cv::imencode(ext, bgr, encoded, params)) fail(path, "cannot encode the image");
  } catch (const cv::Exception& e) {
    fail(path, std::string("cannot encode the image (") + e.what() + ")");
  }
  return encoded;
}

void save_image_rgb(const std::string& path, const cv::Mat& rgb) {
  const auto encoded = encode_image_rgb(rgb, path);
  // Encode fully, write a temporary next to the target, then rename: readers never see a
  // half-written image and a failure leaves the old file (or nothing) in place.
  write_file_atomically(path, encoded);
}

bool has_image_extension(const std::string& path) {
  const std::string ext = lower_extension(path);
  const auto& known = readable_extensions();
  return std::find(known.begin(), known.end(), ext) != known.end();
}

}  // namespace attnkit::vision
