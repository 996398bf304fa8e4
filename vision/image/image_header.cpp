// vision/image/image_header.cpp: image sizes from PNG, JPEG, BMP, WebP, PNM and TIFF headers.
#include "vision/image/image_header.h"

#include <cctype>
#include <cstring>

namespace attnkit::vision {
namespace {

// Every read is bounds-checked through this view: the bytes may be anything.
class Bytes {
 public:
  Bytes(const unsigned char* data, size_t size) : data_(data), size_(size) {}
  size_t size() const { return size_; }
  bool has(size_t offset, size_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }
  bool matches(size_t offset, const char* magic, size_t length) const {
    return has(offset, length) && std::memcmp(data_ + offset, magic, length) == 0;
  }
  unsigned char at(size_t offset) const { return data_[offset]; }
  uint32_t be(size_t offset, size_t length) const {
    uint32_t value = 0;
    for (size_t i = 0; i < length; ++i) value = (value << 8) | data_[offset + i];
    return value;
  }
  uint32_t le(size_t offset, size_t length) const {
    uint32_t value = 0;
    for (size_t i = length; i-- > 0;) value = (value << 8) | data_[offset + i];
    return value;
  }

 private:
  const unsigned char* data_;
  size_t size_;
};

using Result = std::optional<ImageDimensions>;

// PNG spec 11.2.2: IHDR is the first chunk; width and height are big-endian at bytes 16 and 20.
Result png_dimensions(const Bytes& b) {
  if (!b.matches(12, "IHDR", 4) || !b.has(16, 8)) return std::nullopt;
  return ImageDimensions{b.be(16, 4), b.be(20, 4)};
}

// ITU T.81 B.2.2: the frame header (SOF0-SOF15 except DHT C4, JPG C8 and DAC CC) holds
// P (1 byte), Y = lines (2 bytes), X = samples per line (2 bytes).
Result jpeg_dimensions(const Bytes& b) {
  size_t i = 2;
  while (b.has(i, 4)) {
    if (b.at(i) != 0xFF) {  // libjpeg skips stray bytes to the next marker (with a warning)
      ++i;
      continue;
    }
    const unsigned char marker = b.at(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x00) {  // FF 00 is no marker: libjpeg skips it as stray bytes too
      i += 2;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      i += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // EOI or scan before a frame
    const size_t length = b.be(i + 2, 2);
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                       marker != 0xCC;
    if (frame) {
      if (!b.has(i + 4, 5)) return std::nullopt;
      return ImageDimensions{b.be(i + 7, 2), b.be(i + 5, 2)};
    }
    if (length < 2) return std::nullopt;
    i += 2 + length;
  }
  return std::nullopt;
}

// BMP: the DIB header follows the 14-byte file header; a 12-byte OS/2 core header has 16-bit
// sizes, every later one signed 32-bit sizes (a negative height means top-down rows).
Result bmp_dimensions(const Bytes& b) {
  if (!b.has(14, 4)) return std::nullopt;
  const uint32_t header_size = b.le(14, 4);
  if (header_size == 12) {
    if (!b.has(18, 4)) return std::nullopt;
    return ImageDimensions{b.le(18, 2), b.le(20, 2)};
  }
  if (!b.has(18, 8)) return std::nullopt;
  const auto width = static_cast<int32_t>(b.le(18, 4));
  const auto height = static_cast<int32_t>(b.le(22, 4));
  return ImageDimensions{width < 0 ? -static_cast<int64_t>(width) : width,
                         height < 0 ? -static_cast<int64_t>(height) : height};
}

// WebP container spec: the first chunk after "RIFF size WEBP" is VP8 (lossy: 14-bit sizes after
// the 3-byte frame tag and start code), VP8L (lossless: 14-bit sizes minus one after the 0x2F
// signature) or VP8X (extended: 24-bit canvas sizes minus one).
Result webp_dimensions(const Bytes& b) {
  if (b.matches(12, "VP8 ", 4) && b.has(26, 4) && b.matches(23, "\x9d\x01\x2a", 3)) {
    return ImageDimensions{b.le(26, 2) & 0x3FFF, b.le(28, 2) & 0x3FFF};
  }
  if (b.matches(12, "VP8L", 4) && b.has(20, 5) && b.at(20) == 0x2F) {
    const uint32_t bits = b.le(21, 4);
    return ImageDimensions{(bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (b.matches(12, "VP8X", 4) && b.has(24, 6)) {
    return ImageDimensions{static_cast<int64_t>(b.le(24, 3)) + 1,
                           static_cast<int64_t>(b.le(27, 3)) + 1};
  }
  return std::nullopt;
}

// Netpbm: "P<n>", then width and height as decimal text separated by whitespace or comments.
Result pnm_dimensions(const Bytes& b) {
  size_t i = 2;
  int64_t values[2] = {0, 0};
  for (int64_t& value : values) {
    while (i < b.size()) {
      if (b.at(i) == '#') {
        while (i < b.size() && b.at(i) != '\n') ++i;
      } else if (std::isspace(b.at(i))) {
        ++i;
      } else {
        break;
      }
    }
    if (i >= b.size() || !std::isdigit(b.at(i))) return std::nullopt;
    for (; i < b.size() && std::isdigit(b.at(i)); ++i) {
      value = value * 10 + (b.at(i) - '0');
      if (value > (int64_t{1} << 40)) return std::nullopt;  // no real image is this wide
    }
  }
  return ImageDimensions{values[0], values[1]};
}

// TIFF 6.0: the first IFD's ImageWidth (256) and ImageLength (257) entries, SHORT or LONG.
Result tiff_dimensions(const Bytes& b) {
  const bool little = b.matches(0, "II", 2);
  auto read = [&](size_t offset, size_t length) {
    return little ? b.le(offset, length) : b.be(offset, length);
  };
  if (!b.has(4, 4)) return std::nullopt;
  const size_t ifd = read(4, 4);
  if (!b.has(ifd, 2)) return std::nullopt;
  const size_t entries = read(ifd, 2);
  int64_t width = -1, height = -1;
  for (size_t e = 0; e < entries; ++e) {
    const size_t at = ifd + 2 + 12 * e;
    if (!b.has(at, 12)) break;
    const uint32_t tag = read(at, 2);
    const uint32_t type = read(at + 2, 2);
    if (tag != 256 && tag != 257) continue;
    int64_t value = -1;
    if (type == 3) value = read(at + 8, 2);  // SHORT, left-justified in the value field
    if (type == 4) value = read(at + 8, 4);  // LONG
    (tag == 256 ? width : height) = value;
  }
  if (width < 0 || height < 0) return std::nullopt;
  return ImageDimensions{width, height};
}

}  // namespace

std::optional<ImageDimensions> read_image_dimensions(const unsigned char* bytes, size_t size) {
  const Bytes b(bytes, size);
  if (b.matches(0, "\x89PNG\r\n\x1a\n", 8)) return png_dimensions(b);
  if (b.matches(0, "\xff\xd8\xff", 3)) return jpeg_dimensions(b);
  if (b.matches(0, "BM", 2)) return bmp_dimensions(b);
  if (b.matches(0, "RIFF", 4) && b.matches(8, "WEBP", 4)) return webp_dimensions(b);
  if (b.has(0, 2) && b.at(0) == 'P' && b.at(1) >= '1' && b.at(1) <= '6') return pnm_dimensions(b);
  if (b.matches(0, "II*\0", 4) || b.matches(0, "MM\0*", 4)) return tiff_dimensions(b);
  return std::nullopt;
}

}  // namespace attnkit::vision
