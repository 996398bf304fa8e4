// tests/vision/checkpoint/safetensors_test.cpp: round trips, zero-copy views and rejection of bad
// files.
#include "vision/checkpoint/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "tests/vision/oracle_skip.h"
#include "vision/errors.h"

namespace fs = std::filesystem;
using attnkit::vision::CheckpointError;
using attnkit::vision::parse_safetensors;
using attnkit::vision::SafetensorsEntry;
using attnkit::vision::SafetensorsFile;
using attnkit::vision::save_safetensors;

namespace {

// A fresh directory per test, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("attnkit_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(path_)) {
      names.push_back(item.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string le64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

// A file as the format lays it out, with the header padded to a multiple of 8 like real writers.
std::string make_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<SafetensorsEntry> parse(const std::string& bytes,
                                    std::map<std::string, std::string>* metadata = nullptr) {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                           "x.safetensors", metadata);
}

// Runs `action`, which must throw CheckpointError whose message contains every one of `parts`.
void expect_error(const std::function<void()>& action, std::initializer_list<std::string> parts) {
  try {
    action();
    ADD_FAILURE() << "no CheckpointError thrown; expected one mentioning '" << *parts.begin()
                  << "'";
  } catch (const CheckpointError& e) {
    const std::string message = e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos)
          << "message \"" << message << "\" lacks \"" << part << "\"";
    }
  }
}

// A malformed in-memory file must be rejected naming "x.safetensors" and the problem.
void expect_rejected(const std::string& bytes, std::initializer_list<std::string> parts) {
  expect_error([&] { parse(bytes); }, {"x.safetensors: "});
  expect_error([&] { parse(bytes); }, parts);
}

std::string f32_bytes(std::initializer_list<float> values) {
  std::string out(values.size() * 4, '\0');
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

}  // namespace

TEST(Safetensors, RoundTripF32F16BF16) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  torch::manual_seed(7);
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"blocks.0.attn.qkv.weight", torch::randn({4, 3})},
      {"half", torch::randn({5}).to(torch::kHalf)},
      {"bfloat", torch::randn({3, 2}).to(torch::kBFloat16)},
      {"step", torch::tensor(int64_t{123456789012345})},  // scalar, shape []
      {"empty", torch::zeros({0, 7})},
      {"ids", torch::arange(-3, 3, torch::kLong)},
      {"mask", torch::tensor({true, false, true})},
      {"bytes", torch::tensor({0, 200, 255}, torch::kByte)},
      {"chars", torch::tensor({-128, 0, 127}, torch::kChar)},
      {"shorts", torch::tensor({-30000, 3}, torch::kShort)},
      {"ints", torch::tensor({-2000000000, 7}, torch::kInt)},
      {"doubles", torch::tensor({1e300, -0.5}, torch::kDouble)},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"note", "caf\u00e9 \"quoted\""}};
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.entries().size(), tensors.size());
  // Saving lays tensors out in the given order and entries come back sorted by offset, so the
  // two orders agree (the zero-byte "empty" sorts before the tensor sharing its offset).
  uint64_t expected_begin = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsEntry& e = file.entries()[i];
    EXPECT_EQ(e.name, tensors[i].first);
    EXPECT_EQ(e.begin, expected_begin) << e.name;
    expected_begin = e.end;
  }
  for (const auto& [name, original] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(file.contains(name));
    const torch::Tensor loaded = file.tensor(name);
    EXPECT_EQ(loaded.scalar_type(), original.scalar_type());
    EXPECT_EQ(loaded.sizes(), original.sizes());
    EXPECT_TRUE(torch::equal(loaded, original));
  }
  EXPECT_EQ(file.entry("blocks.0.attn.qkv.weight").dtype, "F32");
  EXPECT_EQ(file.entry("half").dtype, "F16");
  EXPECT_EQ(file.entry("bfloat").dtype, "BF16");
  EXPECT_EQ(file.entry("step").dtype, "I64");
  EXPECT_TRUE(file.entry("step").shape.empty());
  EXPECT_EQ(file.entry("step").end - file.entry("step").begin, 8u);
  EXPECT_EQ(file.entry("empty").shape, (std::vector<int64_t>{0, 7}));
  EXPECT_EQ(file.entry("empty").begin, file.entry("empty").end);
  EXPECT_EQ(file.entry("mask").dtype, "BOOL");
  EXPECT_EQ(file.entry("doubles").dtype, "F64");
  EXPECT_FALSE(file.contains("missing"));
}

TEST(Safetensors, SavedLayoutFollowsTheFormat) {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  save_safetensors(path, {{"b", torch::tensor({1.0f, 2.0f})}, {"a", torch::tensor({3.0f})}});
  const std::string bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 12);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));  // padded with spaces only
  const auto json = nlohmann::json::parse(header);
  EXPECT_FALSE(json.contains("__metadata__"));  // only written when there is metadata
  EXPECT_EQ(json["b"]["dtype"], "F32");
  EXPECT_EQ(json["b"]["shape"], nlohmann::json::array({2}));
  EXPECT_EQ(json["b"]["data_offsets"], nlohmann::json::array({0, 8}));
  EXPECT_EQ(json["a"]["data_offsets"], nlohmann::json::array({8, 12}));
  EXPECT_EQ(bytes.substr(8 + n), f32_bytes({1.0f, 2.0f, 3.0f}));
}

TEST(Safetensors, SavesNonContiguousTensorsByValue) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const torch::Tensor base = torch::arange(12, torch::kFloat).reshape({3, 4});
  const torch::Tensor transposed = base.t();
  const torch::Tensor strided = base.index({torch::indexing::Slice(), 1});
  save_safetensors(path, {{"t", transposed}, {"s", strided}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(torch::equal(file.tensor("t"), transposed));
  EXPECT_TRUE(torch::equal(file.tensor("s"), strided));
  EXPECT_EQ(file.entry("t").shape, (std::vector<int64_t>{4, 3}));
}

TEST(Safetensors, ConvertsHalfPrecisionToFloat) {
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  // Values exactly representable in both 16-bit formats, so the conversion must be exact.
  const torch::Tensor expected = torch::tensor({1.5f, -2.25f, 0.0f, 1024.0f, -0.125f, 3.0f});
  save_safetensors(
      path,
      {{"bf", expected.to(torch::kBFloat16)}, {"h", expected.to(torch::kHalf)}, {"f", expected}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (const char* name : {"bf", "h", "f"}) {
    SCOPED_TRACE(name);
    const torch::Tensor converted = file.tensor(name, torch::kFloat);
    EXPECT_EQ(converted.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(converted, expected));
    // A fresh tensor: not a view of the read-only mapping, so it can be written.
    EXPECT_NE(converted.data_ptr(), file.tensor(name).data_ptr());
    converted.mul_(2);
    EXPECT_TRUE(torch::equal(file.tensor(name, torch::kFloat), expected));
  }
  const torch::Tensor as_double = file.tensor("bf", torch::kDouble);
  EXPECT_EQ(as_double.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(as_double, expected.to(torch::kDouble)));
}

TEST(Safetensors, AlignedTensorsAreZeroCopyViewsThatOutliveTheFile) {
  TempDir dir;
  const std::string path = dir.file("views.safetensors");
  save_safetensors(path, {{"a", torch::arange(4, torch::kFloat)},
                          {"b", torch::arange(10, 16, torch::kLong)},
                          {"c", torch::arange(3, torch::kFloat)}});
  torch::Tensor a, b, c, a_again;
  uint64_t a_begin = 0, b_begin = 0, c_begin = 0;
  {
    const SafetensorsFile file = SafetensorsFile::open(path);
    a = file.tensor("a");
    b = file.tensor("b");
    c = file.tensor("c");
    a_again = file.tensor("a");
    a_begin = file.entry("a").begin;
    b_begin = file.entry("b").begin;
    c_begin = file.entry("c").begin;
  }  // the file object is gone; the tensors must still see the mapped bytes
  const auto* pa = static_cast<const uint8_t*>(a.data_ptr());
  EXPECT_EQ(static_cast<const uint8_t*>(b.data_ptr()) - pa,
            static_cast<std::ptrdiff_t>(b_begin - a_begin));
  EXPECT_EQ(static_cast<const uint8_t*>(c.data_ptr()) - pa,
            static_cast<std::ptrdiff_t>(c_begin - a_begin));
  EXPECT_EQ(a_again.data_ptr(), a.data_ptr());  // both views of the same mapping
  EXPECT_TRUE(torch::equal(a, torch::arange(4, torch::kFloat)));
  EXPECT_TRUE(torch::equal(b, torch::arange(10, 16, torch::kLong)));
  EXPECT_TRUE(torch::equal(c, torch::arange(3, torch::kFloat)));
}

TEST(Safetensors, MisalignedTensorIsCopiedCorrectly) {
  TempDir dir;
  const std::string path = dir.file("odd.safetensors");
  // One byte of U8 first puts the F32 data at an odd address in the mapping.
  const std::string header = R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("f":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
  write_bytes(path, make_file(header, std::string(1, '\x2a') + f32_bytes({1.5f, -2.0f, 8.0f})));
  const SafetensorsFile file = SafetensorsFile::open(path);
  const torch::Tensor u = file.tensor("u");
  const torch::Tensor f = file.tensor("f");
  EXPECT_EQ(u.item<uint8_t>(), 42);
  // 'u' is a view of the mapping; 'f' cannot be one at u + 1, so it must be an aligned copy.
  EXPECT_NE(static_cast<const uint8_t*>(f.data_ptr()),
            static_cast<const uint8_t*>(u.data_ptr()) + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data_ptr()) % 4, 0u);
  EXPECT_TRUE(torch::equal(f, torch::tensor({1.5f, -2.0f, 8.0f})));
}

TEST(Safetensors, UnsupportedDtypeOpensButThrowsOnAccess) {
  TempDir dir;
  const std::string path = dir.file("u16.safetensors");
  const std::string header = R"({"w":{"dtype":"U16","shape":[2],"data_offsets":[0,4]},)"
                             R"("e4":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[4,6]},)"
                             R"("ok":{"dtype":"I16","shape":[1],"data_offsets":[6,8]}})";
  write_bytes(path, make_file(header, std::string("\x01\x00\x02\x00\x10\x20\x05\x00", 8)));
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.entry("w").dtype, "U16");
  EXPECT_EQ(file.tensor("ok").item<int16_t>(), 5);
  expect_error([&] { file.tensor("w"); }, {path + ": ", "'w'", "U16"});
  expect_error([&] { file.tensor("w", torch::kFloat); }, {"'w'", "U16"});
  expect_error([&] { file.tensor("e4"); }, {"'e4'", "F8_E4M3"});
  expect_error([&] { file.tensor("nope"); }, {path + ": ", "no tensor named 'nope'"});
  expect_error([&] { file.entry("nope"); }, {"no tensor named 'nope'"});
}

TEST(Safetensors, EmptyHeaderIsAValidFile) {
  std::map<std::string, std::string> metadata = {{"stale", "value"}};
  EXPECT_TRUE(parse(make_file("{}", "", /*pad=*/false), &metadata).empty());
  EXPECT_TRUE(metadata.empty());
  EXPECT_TRUE(parse(make_file("{}", "")).empty());  // padded: "{}      "
  EXPECT_TRUE(parse(make_file(R"({"__metadata__":{"k":"v"}})", ""), &metadata).empty());
  EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"k", "v"}}));

  TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  save_safetensors(path, {});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(file.entries().empty());
  EXPECT_TRUE(file.metadata().empty());
  EXPECT_EQ(read_bytes(path).size(), 16u);
}

TEST(Safetensors, ZeroSizeTensorsMayShareAnOffset) {
  const std::string header = R"({"z1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("z0":{"dtype":"I64","shape":[3,0],"data_offsets":[0,0]},)"
                             R"("b":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})";
  const auto entries = parse(make_file(header, f32_bytes({1.0f, 2.0f})));
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"z0", "a", "z1", "b"}));
  EXPECT_EQ(entries[0].shape, (std::vector<int64_t>{3, 0}));
}

TEST(Safetensors, RejectsTooShortFile) {
  expect_rejected("abc", {"file is 3 bytes, too short for the 8-byte header length"});
  expect_rejected("", {"file is 0 bytes"});
}

TEST(Safetensors, RejectsHeaderLengthOverLimit) {
  expect_rejected(le64(4294967296ull) + "{}",
                  {"header length 4294967296 exceeds the 100000000-byte limit"});
  expect_rejected(le64(~0ull) + "{}", {"exceeds the 100000000-byte limit"});
}

TEST(Safetensors, RejectsHeaderBeyondFile) {
  expect_rejected(le64(100) + "{}      ", {"header length 100", "past the end"});
  expect_rejected(le64(3) + "{}", {"header length 3", "past the end"});
}

TEST(Safetensors, RejectsInvalidJson) {
  expect_rejected(make_file(R"({"a": )", ""), {"not valid JSON"});
  expect_rejected(make_file(R"({"a":{"dtype":"F32"} } x)", ""), {"not valid JSON"});
  // NUL padding is not whitespace to JSON (writers pad with spaces).
  expect_rejected(make_file(std::string("{\"a\":1}\0\0", 9), "", /*pad=*/false),
                  {"not valid JSON", "NUL byte at offset 7"});
  expect_rejected(make_file(std::string("{}\0 garbage", 11), ""), {"NUL byte at offset 2"});
}

TEST(Safetensors, RejectsHeaderThatIsNotAnObject) {
  expect_rejected(make_file("[1, 2]", ""), {"not a JSON object"});
  expect_rejected(make_file(R"("text")", ""), {"not a JSON object"});
  expect_rejected(make_file("x {}", ""), {"must start with '{'"});
  expect_rejected(make_file(" \t", ""), {"must start with '{'"});
  expect_rejected(le64(0), {"not a JSON object"});
}

TEST(Safetensors, AcceptsWhitespaceAroundTheHeader) {
  // The reference reader accepts JSON whitespace before and after the object (safetensors
  // #686), so that writers can align the data section.
  const std::string entry = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  for (const std::string& header : {" " + entry, "\n\t\r " + entry, entry + "\n"}) {
    const auto entries = parse(make_file(header, f32_bytes({1.5f})));
    ASSERT_EQ(entries.size(), 1u) << header;
    EXPECT_EQ(entries[0].name, "w");
  }
}

TEST(Safetensors, NamesOtherModelFormatsAndHowToConvertThem) {
  // torch.save's zip (first entry archive/data.pkl), TorchScript (constants.pkl, code/), a
  // legacy pickle (PROTO 2 + torch's magic number), other formats people try by mistake.
  const std::string zip = std::string("PK\x03\x04\x00\x00\x08\x08", 8);
  expect_rejected(zip + "archive/data.pkl payload",
                  {"torch.save", "never unpickles", "st.save_file(torch.load("});
  expect_rejected(zip + "archive/data.pkl archive/constants.pkl archive/code/__torch__.py",
                  {"TorchScript", "torch.jit.load("});
  expect_rejected(zip + "numbers.npy", {"a zip archive, not a safetensors file"});
  expect_rejected(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8", 12),
                  {"a Python pickle", "never unpickles"});
  expect_rejected(std::string("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", 16),
                  {"an image, not a model file"});
  expect_rejected(std::string("GGUF\x03\x00\x00\x00\x01\x00\x00\x00", 12), {"GGUF"});
}

TEST(Safetensors, RejectsInvalidUtf8) {
  expect_rejected(make_file("{\"\xff\":1}", ""), {"not valid UTF-8"});
  expect_rejected(make_file("{\"\xc0\xaf\":1}", ""), {"not valid UTF-8"});      // overlong '/'
  expect_rejected(make_file("{\"\xed\xa0\x80\":1}", ""), {"not valid UTF-8"});  // surrogate
  expect_rejected(make_file("{\"\xe2\x82\":1}", ""), {"not valid UTF-8"});      // truncated
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_rejected(make_file(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})",
                            std::string(16, '\0')),
                  {"tensor 'w' has unknown dtype 'F128'"});
  expect_rejected(
      make_file(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
      {"unknown dtype 'f32'"});
  expect_rejected(
      make_file(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
      {"tensor 'w': dtype must be a string"});
}

TEST(Safetensors, RejectsMissingOrUnexpectedKeys) {
  expect_rejected(make_file(R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0')),
                  {"tensor 'w' has no data_offsets"});
  expect_rejected(make_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", std::string(4, '\0')),
                  {"tensor 'w' has no shape"});
  expect_rejected(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})",
                            std::string(4, '\0')),
                  {"tensor 'w' has unexpected key 'extra'"});
  expect_rejected(make_file(R"({"w":[0,4]})", std::string(4, '\0')),
                  {"tensor 'w' is not a JSON object"});
}

TEST(Safetensors, RejectsBadShapeAndOffsetTypes) {
  const std::string data(4, '\0');
  for (const char* shape :
       {R"("1")", "[1.0]", "[-1]", R"(["1"])", "[[1]]", "null", "[18446744073709551616]"}) {
    SCOPED_TRACE(shape);
    expect_rejected(make_file(std::string(R"({"w":{"dtype":"F32","shape":)") + shape +
                                  R"(,"data_offsets":[0,4]}})",
                              data),
                    {"tensor 'w': shape must be an array of non-negative integers"});
  }
  for (const char* offsets : {"[0]", "[0,4,4]", "[0,4.0]", "[-1,4]", R"({"begin":0})", "4"}) {
    SCOPED_TRACE(offsets);
    expect_rejected(make_file(std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") +
                                  offsets + "}}",
                              data),
                    {"tensor 'w': data_offsets must be two non-negative integers"});
  }
  expect_rejected(make_file(R"({"w":{"dtype":"F32","shape":[9223372036854775808,0],)"
                            R"("data_offsets":[0,0]}})",
                            ""),
                  {"tensor 'w'", "too large"});
}

TEST(Safetensors, RejectsNonContiguousOffsets) {
  // A gap: 'b' starts 4 bytes after 'a' ends.
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                            std::string(12, '\0')),
                  {"tensor 'b' starts at byte 8", "'a' ends at 4", "gap", "contiguous"});
  // An overlap: 'b' starts inside 'a'.
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            std::string(12, '\0')),
                  {"tensor 'b' starts at byte 4", "'a' ends at 8", "overlap", "contiguous"});
  // The first tensor must start at 0.
  expect_rejected(
      make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
      {"tensor 'a' starts at byte 4", "data section starts at 0"});
  // Two tensors on the same bytes.
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                            std::string(4, '\0')),
                  {"overlap"});
  expect_rejected(
      make_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", std::string(4, '\0')),
      {"tensor 'a' has data_offsets [4, 0]", "end before they begin"});
}

TEST(Safetensors, RejectsByteCountMismatch) {
  expect_rejected(make_file(R"({"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                            std::string(20, '\0')),
                  {"tensor 'a.weight' has 20 bytes, shape [2, 3] x F32 needs 24"});
  expect_rejected(
      make_file(R"({"s":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})", std::string(4, '\0')),
      {"tensor 's' has 4 bytes, shape [] x BF16 needs 2"});
}

TEST(Safetensors, RejectsTrailingAndMissingBytes) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(parse(make_file(header, std::string(8, '\0'))).size(), 1u);
  expect_rejected(make_file(header, std::string(24, '\0')),
                  {"16 trailing bytes after the last tensor"});
  expect_rejected(make_file("{}", std::string(3, '\0')),
                  {"3 trailing bytes after the last tensor"});
  expect_rejected(make_file(header, std::string(5, '\0')),
                  {"tensors need 8 data bytes but the file has 5", "3 bytes missing"});
  expect_rejected(make_file(R"({"a":{"dtype":"U8","shape":[1099511627776],)"
                            R"("data_offsets":[0,1099511627776]}})",
                            ""),
                  {"1099511627776 bytes missing"});
}

TEST(Safetensors, RejectsBadMetadata) {
  expect_rejected(make_file(R"({"__metadata__":{"format":"pt","epoch":3}})", ""),
                  {"__metadata__ value for 'epoch' is not a string"});
  expect_rejected(make_file(R"({"__metadata__":{"nested":{"a":"b"}}})", ""),
                  {"__metadata__ value for 'nested' is not a string"});
  expect_rejected(make_file(R"({"__metadata__":["pt"]})", ""),
                  {"__metadata__ is not a JSON object"});
  expect_rejected(make_file(R"({"__metadata__":null})", ""), {"__metadata__ is not a JSON object"});
}

TEST(Safetensors, RejectsDuplicateNames) {
  // nlohmann would silently keep the second 'a'; the reader must not.
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            std::string(8, '\0')),
                  {"duplicate tensor name 'a'"});
  expect_rejected(make_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],)"
                            R"("data_offsets":[0,4]}})",
                            std::string(4, '\0')),
                  {"duplicate key 'dtype'"});
  expect_rejected(make_file(R"({"__metadata__":{"k":"1","k":"2"}})", ""), {"duplicate key 'k'"});
  expect_rejected(make_file(R"({"__metadata__":{},"__metadata__":{}})", ""),
                  {"duplicate tensor name '__metadata__'"});
}

TEST(Safetensors, RejectsShapeOverflow) {
  expect_rejected(make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                            R"("data_offsets":[0,0]}})",
                            ""),
                  {"tensor 'w' shape [4294967296, 4294967296] x F32 overflows"});
  // Product fits in 64 bits but times the element size does not.
  expect_rejected(make_file(R"({"w":{"dtype":"F64","shape":[4611686018427387904],)"
                            R"("data_offsets":[0,0]}})",
                            ""),
                  {"overflows"});
}

TEST(Safetensors, RejectsDeeplyNestedHeader) {
  const std::string deep = R"({"__metadata__":)" + std::string(100000, '[') + "}";
  expect_rejected(make_file(deep, ""), {"nests deeper than"});
}

TEST(Safetensors, ErrorsFromOpenNameThePath) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                              std::string(20, '\0')));
  expect_error([&] { SafetensorsFile::open(path); },
               {path + ": 16 trailing bytes after the last tensor"});

  const std::string empty = dir.file("empty.safetensors");
  write_bytes(empty, "");
  expect_error([&] { SafetensorsFile::open(empty); }, {empty + ": file is 0 bytes"});
  const std::string tiny = dir.file("tiny.safetensors");
  write_bytes(tiny, "12345");
  expect_error([&] { SafetensorsFile::open(tiny); },
               {tiny + ": file is 5 bytes, too short for the 8-byte header length"});
}

TEST(Safetensors, OpenRejectsMissingFilesAndDirectories) {
  TempDir dir;
  const std::string missing = dir.file("nothing.safetensors");
  expect_error([&] { SafetensorsFile::open(missing); }, {missing + ": no such file"});
  expect_error([&] { SafetensorsFile::open(dir.path().string()); },
               {dir.path().string() + ": is a directory"});
}

TEST(Safetensors, OpenRejectsUnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files regardless of their mode";
  TempDir dir;
  const std::string path = dir.file("locked.safetensors");
  save_safetensors(path, {});
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  expect_error([&] { SafetensorsFile::open(path); }, {path + ": permission denied"});
}

TEST(Safetensors, SaveLeavesOnlyTheFileBehind) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  save_safetensors(path, {{"w", torch::ones({2, 2})}}, {{"k", "v"}});
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"m.safetensors"}));
  // Overwriting goes through a rename as well and replaces the contents.
  save_safetensors(path, {{"w", torch::zeros({3})}});
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"m.safetensors"}));
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_TRUE(torch::equal(file.tensor("w"), torch::zeros({3})));
  EXPECT_TRUE(file.metadata().empty());
}

TEST(Safetensors, FailedSaveLeavesNothingBehind) {
  TempDir dir;
  const std::string missing_dir = dir.file("no/such/dir/m.safetensors");
  expect_error(
      [&] {
        save_safetensors(missing_dir, {{"w", torch::ones({2})}});
      },
      {missing_dir + ": "});
  EXPECT_TRUE(dir.listing().empty());

  // The target is a directory, so the final rename fails and the temporary must go.
  const std::string target = dir.file("target");
  fs::create_directory(target);
  expect_error([&] { save_safetensors(target, {{"w", torch::ones({2})}}); }, {target + ": "});
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"target"}));
}

TEST(Safetensors, SaveRejectsBadInputsWithoutTouchingTheFile) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  save_safetensors(path, {{"keep", torch::ones({2})}});
  const std::string before = read_bytes(path);

  expect_error(
      [&] {
        save_safetensors(path, {{"a", torch::ones({1})}, {"a", torch::ones({1})}});
      },
      {path + ": ", "duplicate tensor name 'a'"});
  expect_error(
      [&] {
        save_safetensors(path, {{"u", torch::Tensor()}});
      },
      {path + ": ", "tensor 'u' is undefined"});
  expect_error(
      [&] {
        save_safetensors(path, {{"c", torch::ones({2}, torch::kComplexFloat)}});
      },
      {path + ": ", "tensor 'c'", "cannot store"});
  expect_error([&] { save_safetensors(path, {{"__metadata__", torch::ones({1})}}); }, {"reserved"});
  expect_error([&] { save_safetensors(path, {{"bad\xff", torch::ones({1})}}); }, {path + ": "});

  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"m.safetensors"}));
}

// Random corruption must only ever produce CheckpointError (never a crash or another
// exception), and whatever parses must describe bytes inside the buffer.
TEST(Safetensors, CorruptedFilesNeverCrashTheParser) {
  TempDir dir;
  const std::string path = dir.file("seed.safetensors");
  save_safetensors(
      path,
      {{"a", torch::ones({2, 3})}, {"b", torch::zeros({0})}, {"c", torch::arange(5, torch::kLong)}},
      {{"k", "v"}});
  const std::string seed = read_bytes(path);
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.resize(at);
          break;
        case 2:
          bytes.insert(at, 1, static_cast<char>(rng()));
          break;
        default:
          bytes[at] = "{}[]\",:0123456789 "[rng() % 19];
          break;
      }
      if (bytes.empty()) break;
    }
    try {
      const auto entries = parse(bytes);
      ++accepted;
      for (const auto& e : entries) EXPECT_LE(e.end, bytes.size());
    } catch (const CheckpointError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-CheckpointError exception: " << e.what();
    }
  }
  EXPECT_LT(accepted, 3000);
}

#ifdef ATTNKIT_ORACLE_PYTHON
// The Python side parses the layout by hand (Debian has torch but not the safetensors
// package): it checks a file we wrote and writes one we must read.
TEST(Safetensors, InteroperatesWithAHandWrittenPythonReader) {
  if (::access(ATTNKIT_ORACLE_PYTHON, X_OK) != 0) {
    ATTNKIT_SKIP_WITHOUT_ORACLE("no " ATTNKIT_ORACLE_PYTHON);
  }
  TempDir dir;
  const std::string ours = dir.file("ours.safetensors");
  const std::string theirs = dir.file("theirs.safetensors");
  const std::string script = dir.file("oracle.py");
  save_safetensors(ours,
                   {{"w", torch::arange(6, torch::kFloat).reshape({2, 3}) / 4},
                    {"h", torch::tensor({0.5f, -1.5f}).to(torch::kBFloat16)},
                    {"n", torch::tensor(int64_t{-7})}},
                   {{"format", "pt"}});
  std::ofstream(script) << R"PY(
import json, struct, sys, torch
ours, theirs = sys.argv[1], sys.argv[2]
DT = {"F32": torch.float32, "BF16": torch.bfloat16, "I64": torch.int64, "F16": torch.float16}
buf = open(ours, "rb").read()
n = struct.unpack("<Q", buf[:8])[0]
assert (8 + n) % 8 == 0, n
header = json.loads(buf[8:8 + n].decode("utf-8"))
data = buf[8 + n:]
assert header.pop("__metadata__") == {"format": "pt"}
got = {}
for name, info in header.items():
    b, e = info["data_offsets"]
    flat = torch.frombuffer(bytearray(data[b:e]), dtype=DT[info["dtype"]])
    got[name] = flat.reshape(info["shape"])
assert torch.equal(got["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4)
assert torch.equal(got["h"], torch.tensor([0.5, -1.5], dtype=torch.bfloat16))
assert got["n"].shape == () and got["n"].item() == -7
assert max(e for _, e in (i["data_offsets"] for i in header.values())) == len(data)

out = {"x": (torch.arange(4, dtype=torch.float32) - 1.25).to(torch.bfloat16),
       "y": torch.tensor([[1, 2], [3, 4]], dtype=torch.int64),
       "z": torch.tensor([0.1, 2.5], dtype=torch.float16)}
names = {torch.bfloat16: "BF16", torch.int64: "I64", torch.float16: "F16"}
meta, blobs, offset = {"__metadata__": {"source": "python"}}, b"", 0
for name, t in out.items():
    raw = t.contiguous().view(torch.uint8).numpy().tobytes()
    meta[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                  "data_offsets": [offset, offset + len(raw)]}
    blobs += raw
    offset += len(raw)
text = json.dumps(meta).encode()
text += b" " * ((8 - len(text) % 8) % 8)
open(theirs, "wb").write(struct.pack("<Q", len(text)) + text + blobs)
)PY";
  const std::string command =
      std::string(ATTNKIT_ORACLE_PYTHON) + " " + script + " " + ours + " " + theirs;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const SafetensorsFile file = SafetensorsFile::open(theirs);
  EXPECT_EQ(file.metadata().at("source"), "python");
  EXPECT_TRUE(torch::equal(file.tensor("x"),
                           (torch::arange(4, torch::kFloat) - 1.25).to(torch::kBFloat16)));
  EXPECT_TRUE(
      torch::equal(file.tensor("y"), torch::tensor({1, 2, 3, 4}, torch::kLong).view({2, 2})));
  EXPECT_TRUE(torch::equal(file.tensor("z"), torch::tensor({0.1f, 2.5f}).to(torch::kHalf)));
}
#endif
