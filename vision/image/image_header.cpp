// vision/image/image_header.cpp: image sizes from PNG, JPEG, BMP, WebP, PNM and TIFF headers.
#include "vision/image/image_header.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
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
  // Unsigned integers of 1 to 8 bytes.
  uint64_t be(size_t offset, size_t length) const {
    uint64_t value = 0;
    for (size_t i = 0; i < length; ++i) value = (value << 8) | data_[offset + i];
    return value;
  }
  uint64_t le(size_t offset, size_t length) const {
    uint64_t value = 0;
    for (size_t i = length; i-- > 0;) value = (value << 8) | data_[offset + i];
    return value;
  }

 private:
  const unsigned char* data_;
  size_t size_;
};

using Result = std::optional<ImageDimensions>;

// Header fields are unsigned and up to 64 bits wide: clamped into the signed sizes.
Result dimensions(uint64_t width, uint64_t height) {
  const auto clamp = [](uint64_t v) {
    return v > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(v);
  };
  return ImageDimensions{clamp(width), clamp(height)};
}

// PNG spec 11.2.2: IHDR is the first chunk; width and height are big-endian at bytes 16 and 20.
Result png_dimensions(const Bytes& b) {
  if (!b.matches(12, "IHDR", 4) || !b.has(16, 8)) return std::nullopt;
  return dimensions(b.be(16, 4), b.be(20, 4));
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
    const bool frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      if (!b.has(i + 4, 5)) return std::nullopt;
      return dimensions(b.be(i + 7, 2), b.be(i + 5, 2));
    }
    // libjpeg reads a length below 2 as "no data" and looks for the next marker right after
    // the length field; so must this walk, or a frame behind such a segment goes unseen.
    i += length < 2 ? 4 : 2 + length;
  }
  return std::nullopt;
}

// BMP: the DIB header follows the 14-byte file header; a 12-byte OS/2 core header has 16-bit
// sizes, every later one signed 32-bit sizes (a negative height means top-down rows).
Result bmp_dimensions(const Bytes& b) {
  if (!b.has(14, 4)) return std::nullopt;
  const uint64_t header_size = b.le(14, 4);
  if (header_size == 12) {
    if (!b.has(18, 4)) return std::nullopt;
    return dimensions(b.le(18, 2), b.le(20, 2));
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
    return dimensions(b.le(26, 2) & 0x3FFF, b.le(28, 2) & 0x3FFF);
  }
  if (b.matches(12, "VP8L", 4) && b.has(20, 5) && b.at(20) == 0x2F) {
    const uint64_t bits = b.le(21, 4);
    return dimensions((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
  }
  if (b.matches(12, "VP8X", 4) && b.has(24, 6)) {
    return ImageDimensions{static_cast<int64_t>(b.le(24, 3)) + 1,
                           static_cast<int64_t>(b.le(27, 3)) + 1};
  }
  return std::nullopt;
}

// Netpbm, read as OpenCV 4.6's PxM decoder reads it (grfmt_pxm.cpp ReadNumber): before a
// number, whitespace runs and '#' comments (to the end of the line, and the byte after it) are
// skipped, anything else is an error; the number ends at its first non-digit, which is consumed
// whatever it is ("12=34" is 12 by 34).
Result pnm_dimensions(const Bytes& b) {
  if (!b.has(2, 1) || !std::isspace(b.at(2))) return std::nullopt;  // OpenCV's signature
  size_t i = 2;
  auto next = [&](int& c) {
    if (i >= b.size()) return false;
    c = b.at(i++);
    return true;
  };
  int64_t values[2] = {0, 0};
  for (int64_t& value : values) {
    int c = 0;
    if (!next(c)) return std::nullopt;
    while (!std::isdigit(c)) {
      if (c == '#') {
        do {
          if (!next(c)) return std::nullopt;
        } while (c != '\n' && c != '\r');
        if (!next(c)) return std::nullopt;
      } else if (std::isspace(c)) {
        while (std::isspace(c)) {
          if (!next(c)) return std::nullopt;
        }
      } else {
        return std::nullopt;
      }
    }
    do {
      value = value * 10 + (c - '0');
      if (value > INT32_MAX) return std::nullopt;  // OpenCV refuses it too
    } while (next(c) && std::isdigit(c));
  }
  return ImageDimensions{values[0], values[1]};
}

// TIFF 6.0 and BigTIFF: the first IFD's ImageWidth (256) and ImageLength (257). libtiff reads
// them from any integer type, so every integer type counts here; a tag given twice counts with
// its larger value (libtiff warns and keeps one: the limit must hold whichever it keeps).
Result tiff_dimensions(const Bytes& b, bool big) {
  const bool little = b.at(0) == 'I';
  auto read = [&](size_t offset, size_t length) {
    return little ? b.le(offset, length) : b.be(offset, length);
  };
  const size_t offset_size = big ? 8 : 4;
  const size_t count_size = big ? 8 : 2;
  const size_t entry_size = big ? 20 : 12;
  const size_t first_ifd_at = big ? 8 : 4;
  if (!b.has(first_ifd_at, offset_size)) return std::nullopt;
  const uint64_t ifd = read(first_ifd_at, offset_size);
  if (ifd > b.size() || !b.has(ifd, count_size)) return std::nullopt;
  const uint64_t entries = read(ifd, count_size);
  uint64_t width = 0, height = 0;
  bool has_width = false, has_height = false;
  for (uint64_t e = 0; e < entries; ++e) {
    const size_t at = ifd + count_size + entry_size * e;
    if (!b.has(at, entry_size)) break;
    const uint32_t tag = static_cast<uint32_t>(read(at, 2));
    if (tag != 256 && tag != 257) continue;
    const uint32_t type = static_cast<uint32_t>(read(at + 2, 2));
    size_t type_size = 0;
    bool is_signed = false;
    switch (type) {
      case 1:
        type_size = 1;
        break;  // BYTE
      case 6:
        type_size = 1;
        is_signed = true;
        break;  // SBYTE
      case 3:
        type_size = 2;
        break;  // SHORT
      case 8:
        type_size = 2;
        is_signed = true;
        break;  // SSHORT
      case 4:
      case 13:
        type_size = 4;
        break;  // LONG, IFD
      case 9:
        type_size = 4;
        is_signed = true;
        break;  // SLONG
      case 16:
      case 18:
        type_size = 8;
        break;  // LONG8, IFD8
      case 17:
        type_size = 8;
        is_signed = true;
        break;  // SLONG8
      default:
        continue;  // not an integer: libtiff refuses it
    }
    // One value: inline when it fits the entry's value field, else at the offset stored there.
    size_t value_at = at + 4 + offset_size;  // after tag, type and a count as wide as an offset
    if (type_size > offset_size) {
      const uint64_t pointer = read(value_at, offset_size);
      if (pointer > b.size() || !b.has(pointer, type_size)) continue;
      value_at = pointer;
    }
    const uint64_t raw = read(value_at, type_size);
    const bool negative = is_signed && (raw >> (8 * type_size - 1)) != 0;
    if (negative) continue;  // libtiff refuses a negative size
    uint64_t& field = tag == 256 ? width : height;
    field = std::max(field, raw);
    (tag == 256 ? has_width : has_height) = true;
  }
  if (!has_width || !has_height) return std::nullopt;  // libtiff refuses the directory
  return dimensions(width, height);
}

}  // namespace

std::optional<ImageDimensions> read_image_dimensions(const unsigned char* bytes, size_t size) {
  const Bytes b(bytes, size);
  if (b.matches(0, "\x89PNG\r\n\x1a\n", 8)) return png_dimensions(b);
  if (b.matches(0, "\xff\xd8\xff", 3)) return jpeg_dimensions(b);
  if (b.matches(0, "BM", 2)) return bmp_dimensions(b);
  if (b.matches(0, "RIFF", 4) && b.matches(8, "WEBP", 4)) return webp_dimensions(b);
  if (b.has(0, 2) && b.at(0) == 'P' && b.at(1) >= '1' && b.at(1) <= '6') return pnm_dimensions(b);
  if (b.matches(0, "II*\0", 4) || b.matches(0, "MM\0*", 4)) return tiff_dimensions(b, false);
  if (b.matches(0, "II+\0", 4) || b.matches(0, "MM\0+", 4)) return tiff_dimensions(b, true);
  return std::nullopt;
}

}  // namespace attnkit::vision
