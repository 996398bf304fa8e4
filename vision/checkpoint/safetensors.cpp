// vision/checkpoint/safetensors.cpp: strict safetensors parsing, mmap-backed tensors, atomic saves.
#include "vision/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

#include "vision/atomic_file.h"
#include "vision/errors.h"
#include "vision/json_error.h"

// The format stores little-endian integers and tensor bytes; views of the mapping are only
// correct when the host agrees.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors.cpp assumes a little-endian host (the format is little-endian)");

namespace attnkit::vision {
namespace {

using Json = nlohmann::json;

// Same limit as the reference reader, so files it refuses are refused here too.
constexpr uint64_t kMaxHeaderBytes = 100000000;
// A valid header nests three levels deep (object, entry, shape); the cap keeps hostile input
// from building deep documents.
constexpr int kMaxJsonDepth = 64;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  size_t size;
  bool in_torch;  // LibTorch 1.13 has no unsigned 16/32/64-bit or float8 types.
  torch::ScalarType scalar_type;
};

constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 1, true, torch::kBool},     {"U8", 1, true, torch::kByte},
    {"I8", 1, true, torch::kChar},       {"F8_E5M2", 1, false, torch::kByte},
    {"F8_E4M3", 1, false, torch::kByte}, {"I16", 2, true, torch::kShort},
    {"U16", 2, false, torch::kShort},    {"F16", 2, true, torch::kHalf},
    {"BF16", 2, true, torch::kBFloat16}, {"I32", 4, true, torch::kInt},
    {"U32", 4, false, torch::kInt},      {"F32", 4, true, torch::kFloat},
    {"F64", 8, true, torch::kDouble},    {"I64", 8, true, torch::kLong},
    {"U64", 8, false, torch::kLong},
};

const DtypeInfo* find_dtype(std::string_view name) {
  for (const DtypeInfo& info : kDtypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const DtypeInfo* find_dtype(torch::ScalarType type) {
  for (const DtypeInfo& info : kDtypes) {
    if (info.in_torch && info.scalar_type == type) return &info;
  }
  return nullptr;
}

[[noreturn]] void fail(const std::string& file, const std::string& problem) {
  throw CheckpointError(file + ": " + problem);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

// Checked byte-by-byte so overlong forms, surrogates and code points past U+10FFFF are
// rejected, as Rust's str::from_utf8 does.
bool is_valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

// Non-negative JSON integers only: floats (including integers too large for u64, which the
// JSON parser turns into floats) and negative numbers are rejected.
bool as_u64(const Json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

// nlohmann keeps the last of duplicate keys silently, so the parse callback tracks the keys of
// every open object and refuses a repeat; it also bounds the nesting depth.
Json parse_header_json(const char* begin, const char* end, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          fail(file, "header nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        }
        if (event == Json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        if (open_objects.empty()) break;
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) {
          if (open_objects.size() == 1) fail(file, "duplicate tensor name '" + key + "'");
          fail(file, "duplicate key '" + key + "' in the header");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(begin, end, on_event, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    fail(file, "header is not valid JSON (" + json_error_text(e) + ")");
  }
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& name, const Json& value) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) fail(file, where + " is not a JSON object");
  for (const auto& item : value.items()) {
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets") {
      fail(file, where + " has unexpected key '" + item.key() + "'");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) fail(file, where + " has no " + key);
  }

  SafetensorsEntry entry;
  entry.name = name;
  const Json& dtype = value.at("dtype");
  if (!dtype.is_string()) fail(file, where + ": dtype must be a string");
  entry.dtype = dtype.get<std::string>();
  if (!find_dtype(entry.dtype)) fail(file, where + " has unknown dtype '" + entry.dtype + "'");

  const Json& shape = value.at("shape");
  if (!shape.is_array()) fail(file, where + ": shape must be an array of non-negative integers");
  for (const Json& dim : shape) {
    uint64_t d = 0;
    if (!as_u64(dim, &d)) {
      fail(file, where + ": shape must be an array of non-negative integers, got " + shape.dump());
    }
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(file, where + ": shape dimension " + std::to_string(d) + " is too large");
    }
    entry.shape.push_back(static_cast<int64_t>(d));
  }

  const Json& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !as_u64(offsets[0], &entry.begin) ||
      !as_u64(offsets[1], &entry.end)) {
    fail(file, where + ": data_offsets must be two non-negative integers [begin, end]");
  }
  return entry;
}

// Shape x dtype size in bytes, or false on 64-bit overflow.
bool byte_count(const SafetensorsEntry& entry, uint64_t* bytes) {
  uint64_t count = find_dtype(entry.dtype)->size;
  for (int64_t dim : entry.shape) {
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dim), &count)) return false;
  }
  *bytes = count;
  return true;
}

// Owns a file descriptor so every early exit closes it.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error, which matters for writes (close can report ENOSPC).
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

bool bytes_contain(const uint8_t* bytes, size_t size, std::string_view needle) {
  return std::string_view(reinterpret_cast<const char*>(bytes), size).find(needle) !=
         std::string_view::npos;
}

// A file whose first 8 bytes cannot be a header length is often another kind of model file.
// Naming it (and how to convert it) helps more than "header length 578712552184433488 exceeds
// the limit". Nothing here is unpickled or unzipped: the first bytes and the zip's names say it.
std::string foreign_format(const uint8_t* bytes, size_t size) {
  const auto starts = [&](std::string_view magic) {
    return size >= magic.size() && std::memcmp(bytes, magic.data(), magic.size()) == 0;
  };
  const std::string convert =
      "; attnkit never unpickles. Convert it once with Python: python3 -c \"import torch, "
      "safetensors.torch as st; st.save_file(torch.load('IN', map_location='cpu'), "
      "'OUT.safetensors')\" (see the README)";
  if (starts("PK\x03\x04")) {
    // A zip's file names sit in its local headers (start) and central directory (end).
    const size_t window = std::min<size_t>(size, 1 << 16);
    const auto names_contain = [&](std::string_view name) {
      return bytes_contain(bytes, window, name) ||
             bytes_contain(bytes + size - window, window, name);
    };
    if (names_contain("constants.pkl") || names_contain("/code/")) {
      return "a TorchScript archive (torch.jit.save), not a safetensors file; attnkit never "
             "runs TorchScript or unpickles. Save its weights once with Python: python3 -c "
             "\"import torch, safetensors.torch as st; st.save_file(torch.jit.load('IN')."
             "state_dict(), 'OUT.safetensors')\"";
    }
    if (names_contain("data.pkl")) {
      return "a PyTorch checkpoint saved by torch.save (a zip of pickles), not a safetensors "
             "file" +
             convert;
    }
    return "a zip archive, not a safetensors file";
  }
  // Pickle protocol 2-5 starts with PROTO (0x80) and the protocol number; torch.save's legacy
  // format is a pickle too.
  if (size >= 2 && bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5) {
    return "a Python pickle (a legacy torch.save checkpoint or a .pkl file), not a safetensors "
           "file" +
           convert;
  }
  if (starts("GGUF")) return "a GGUF file (llama.cpp), not a safetensors file";
  if (starts("\x89HDF\r\n\x1a\n")) return "an HDF5 file (e.g. Keras .h5), not a safetensors file";
  if (starts("\x93NUMPY")) return "a NumPy .npy array, not a safetensors file";
  if (starts("\x89PNG\r\n\x1a\n") || starts("\xff\xd8\xff")) {
    return "an image, not a model file (images are what a model reads)";
  }
  return "";
}

}  // namespace

std::vector<SafetensorsEntry> parse_safetensors(const uint8_t* bytes, size_t size,
                                                const std::string& file,
                                                std::map<std::string, std::string>* metadata) {
  if (size < 8) {
    fail(file,
         "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    if (const std::string what = foreign_format(bytes, size); !what.empty()) fail(file, what);
  }
  if (header_len > kMaxHeaderBytes) {
    fail(file, "header length " + std::to_string(header_len) + " exceeds the " +
                   std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (header_len > size - 8) {
    fail(file, "header length " + std::to_string(header_len) + " runs past the end of the " +
                   std::to_string(size) + "-byte file");
  }
  const uint8_t* header = bytes + 8;
  if (!is_valid_utf8(header, header_len)) fail(file, "header is not valid UTF-8");
  // The reference reader accepts JSON whitespace around the header (safetensors #686, so that
  // writers can align the data section); anything else before the object is refused.
  size_t first = 0;
  while (first < header_len && (header[first] == ' ' || header[first] == '\t' ||
                                header[first] == '\n' || header[first] == '\r')) {
    ++first;
  }
  if (first == header_len || header[first] != '{') {
    fail(file, "header is not a JSON object (it must start with '{' after any whitespace)");
  }
  const char* text = reinterpret_cast<const char*>(header);
  // nlohmann stops at a NUL byte as if the input ended there, which would hide whatever
  // follows; JSON allows no raw NUL anywhere, so refuse it outright.
  if (const void* nul = std::memchr(text, '\0', header_len)) {
    fail(file, "header is not valid JSON (NUL byte at offset " +
                   std::to_string(static_cast<const char*>(nul) - text) + ")");
  }
  const Json root = parse_header_json(text, text + header_len, file);
  if (!root.is_object()) fail(file, "header is not a JSON object");

  std::map<std::string, std::string> meta;
  std::vector<SafetensorsEntry> entries;
  for (const auto& item : root.items()) {
    if (item.key() == kMetadataKey) {
      if (!item.value().is_object()) fail(file, "__metadata__ is not a JSON object");
      for (const auto& m : item.value().items()) {
        if (!m.value().is_string()) {
          fail(file, "__metadata__ value for '" + m.key() + "' is not a string");
        }
        meta[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(file, item.key(), item.value()));
  }

  // Zero-byte tensors share offsets with their neighbours; the name breaks ties so the order
  // is deterministic.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t expected = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const SafetensorsEntry& e = entries[i];
    const std::string where = "tensor '" + e.name + "'";
    uint64_t needed = 0;
    if (!byte_count(e, &needed)) {
      fail(file, where + " shape " + shape_text(e.shape) + " x " + e.dtype +
                     " overflows a 64-bit byte count");
    }
    if (e.begin > e.end) {
      fail(file, where + " has data_offsets [" + std::to_string(e.begin) + ", " +
                     std::to_string(e.end) + "] that end before they begin");
    }
    if (e.begin != expected) {
      const std::string before = i == 0 ? "the data section starts at 0"
                                        : "the previous tensor '" + entries[i - 1].name +
                                              "' ends at " + std::to_string(expected);
      fail(file, where + " starts at byte " + std::to_string(e.begin) + " but " + before +
                     (e.begin > expected ? " (a gap)" : " (an overlap)") +
                     "; data_offsets must be contiguous");
    }
    if (e.end - e.begin != needed) {
      fail(file, where + " has " + std::to_string(e.end - e.begin) + " bytes, shape " +
                     shape_text(e.shape) + " x " + e.dtype + " needs " + std::to_string(needed));
    }
    expected = e.end;
  }

  const uint64_t data_size = size - 8 - header_len;
  if (expected < data_size) {
    fail(file, std::to_string(data_size - expected) + " trailing bytes after the last tensor");
  }
  if (expected > data_size) {
    fail(file, "tensors need " + std::to_string(expected) + " data bytes but the file has " +
                   std::to_string(data_size) + " (" + std::to_string(expected - data_size) +
                   " bytes missing; truncated file?)");
  }
  if (metadata) *metadata = std::move(meta);
  return entries;
}

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t size = 0;
  size_t data_start = 0;  // 8 + header length: where tensor offsets count from

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address) ::munmap(address, size);
  }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(address); }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK keeps a FIFO from hanging the open; it is refused as non-regular below.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == ENOENT) fail(path, "no such file");
    if (error == EACCES) fail(path, "permission denied");
    fail(path, "cannot open: " + errno_message(error));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    const int error = errno;
    fail(path, "cannot stat: " + errno_message(error));
  }
  if (S_ISDIR(info.st_mode)) fail(path, "is a directory");
  if (!S_ISREG(info.st_mode)) fail(path, "is not a regular file");

  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(info.st_size);
  // mmap refuses length 0; the parser reports such a file as too short.
  if (mapping->size > 0) {
    void* address = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (address == MAP_FAILED) {
      const int error = errno;
      fail(path, "cannot memory-map: " + errno_message(error));
    }
    mapping->address = address;
  }
  fd.close();  // the mapping keeps the file contents reachable

  SafetensorsFile file;
  file.path_ = path;
  file.entries_ = parse_safetensors(mapping->bytes(), mapping->size, path, &file.metadata_);
  uint64_t header_len = 0;
  std::memcpy(&header_len, mapping->bytes(), 8);
  mapping->data_start = 8 + static_cast<size_t>(header_len);
  for (size_t i = 0; i < file.entries_.size(); ++i) file.index_[file.entries_[i].name] = i;
  file.mapping_ = std::move(mapping);
  return file;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail(path_, "no tensor named '" + name + "'");
  return entries_[it->second];
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo* dtype = find_dtype(e.dtype);
  if (!dtype->in_torch) {
    fail(path_,
         "tensor '" + name + "' has dtype " + e.dtype + ", which LibTorch 1.13 cannot represent");
  }
  const auto options = torch::TensorOptions().dtype(dtype->scalar_type);
  if (e.begin == e.end) return torch::empty(e.shape, options);

  const uint8_t* data = mapping_->bytes() + mapping_->data_start + e.begin;
  if (reinterpret_cast<uintptr_t>(data) % dtype->size == 0) {
    // The deleter's copy of the shared_ptr keeps the file mapped while the view lives.
    std::shared_ptr<Mapping> keep_alive = mapping_;
    return torch::from_blob(
        const_cast<uint8_t*>(data), e.shape, [keep_alive](void*) {}, options);
  }
  // Misaligned element access is undefined behaviour, so such tensors are copied out.
  torch::Tensor copy = torch::empty(e.shape, options);
  std::memcpy(copy.data_ptr(), data, e.end - e.begin);
  return copy;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name, torch::ScalarType dtype) const {
  // Always a copy, so callers get a writable tensor independent of the read-only mapping.
  return tensor(name).to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the caller's order, which makes the header easy to read next to the
  // data layout; readers do not care about key order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;

  std::vector<torch::Tensor> contiguous;
  contiguous.reserve(tensors.size());
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = "tensor '" + name + "'";
    if (name == kMetadataKey) fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!names.insert(name).second) fail(path, "duplicate tensor name '" + name + "'");
    if (!tensor.defined()) fail(path, where + " is undefined");
    if (tensor.layout() != torch::kStrided) fail(path, where + " is not a dense tensor");
    const DtypeInfo* dtype = find_dtype(tensor.scalar_type());
    if (!dtype) {
      fail(path, where + " has dtype " + std::string(c10::toString(tensor.scalar_type())) +
                     ", which safetensors cannot store");
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype->size;
    header[name] = {{"dtype", dtype->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(t));
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    fail(path,
         "cannot encode the header (names and metadata must be UTF-8): " + json_error_text(e));
  }
  // Padding keeps the data section 8-byte aligned in the file, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();

  // Streamed tensor by tensor into the temporary: no second copy of the whole file in memory.
  try {
    AtomicFile file(path);
    file.write(&header_len, 8);
    file.write(text.data(), text.size());
    for (const torch::Tensor& t : contiguous) {
      file.write(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
    }
    file.commit();
  } catch (const WriteError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace attnkit::vision
