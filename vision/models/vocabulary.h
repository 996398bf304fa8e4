// vision/models/vocabulary.h: the captioner's word list: <pad> <start> <end> <unk> then the
// training words that occur at least min_count times.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attnkit::vision {

class Vocabulary {
 public:
  static constexpr int64_t kPad = 0;
  static constexpr int64_t kStart = 1;
  static constexpr int64_t kEnd = 2;
  static constexpr int64_t kUnk = 3;

  /// Words of `sentences` seen at least `min_count` times, most frequent first (ties in
  /// alphabetical order, so the same data always gives the same indices).
  static Vocabulary build(const std::vector<std::vector<std::string>>& sentences,
                          int64_t min_count);
  /// From a word list that starts with the four special tokens. Throws std::invalid_argument.
  static Vocabulary from_words(std::vector<std::string> words);

  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  /// The index of `word`, kUnk when it is not in the vocabulary.
  int64_t index(const std::string& word) const;
  const std::string& word(int64_t index) const;  ///< throws std::out_of_range
  const std::vector<std::string>& words() const { return words_; }

  /// Words -> indices (no <start> / <end>).
  std::vector<int64_t> encode(const std::vector<std::string>& words) const;
  /// Indices -> words, stopping at <end> and skipping <pad> and <start>.
  std::vector<std::string> decode(const std::vector<int64_t>& indices) const;

  std::string to_json() const;                           ///< the word list as a JSON array
  static Vocabulary from_json(const std::string& json);  ///< throws std::invalid_argument

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> index_;
};

}  // namespace attnkit::vision
