// vision/models/vocabulary.cpp: building, encoding and storing the word list.
#include "vision/models/vocabulary.h"
#include "vision/json_error.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace attnkit::vision {
namespace {

const std::vector<std::string> kSpecials = {"<pad>", "<start>", "<end>", "<unk>"};

}  // namespace

Vocabulary Vocabulary::build(const std::vector<std::vector<std::string>>& sentences,
                             int64_t min_count) {
  std::map<std::string, int64_t> counts;
  for (const auto& sentence : sentences) {
    for (const auto& w : sentence) ++counts[w];
  }
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [w, c] : counts) {
    const bool special = std::find(kSpecials.begin(), kSpecials.end(), w) != kSpecials.end();
    if (c >= min_count && !special) kept.emplace_back(w, c);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> words = kSpecials;
  for (const auto& item : kept) words.push_back(item.first);
  return from_words(std::move(words));
}

Vocabulary Vocabulary::from_words(std::vector<std::string> words) {
  if (words.size() < kSpecials.size() ||
      !std::equal(kSpecials.begin(), kSpecials.end(), words.begin())) {
    throw std::invalid_argument("vocabulary must start with <pad> <start> <end> <unk>");
  }
  Vocabulary v;
  for (size_t i = 0; i < words.size(); ++i) {
    if (!v.index_.emplace(words[i], static_cast<int64_t>(i)).second) {
      throw std::invalid_argument("vocabulary lists '" + words[i] + "' twice");
    }
  }
  v.words_ = std::move(words);
  return v;
}

int64_t Vocabulary::index(const std::string& word) const {
  auto it = index_.find(word);
  return it == index_.end() ? kUnk : it->second;
}

const std::string& Vocabulary::word(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw std::out_of_range("word index " + std::to_string(index) + " outside a vocabulary of " +
                            std::to_string(size()));
  }
  return words_[static_cast<size_t>(index)];
}

std::vector<int64_t> Vocabulary::encode(const std::vector<std::string>& words) const {
  std::vector<int64_t> out;
  out.reserve(words.size());
  for (const auto& w : words) out.push_back(index(w));
  return out;
}

std::vector<std::string> Vocabulary::decode(const std::vector<int64_t>& indices) const {
  std::vector<std::string> out;
  for (int64_t i : indices) {
    if (i == kEnd) break;
    if (i == kPad || i == kStart) continue;
    out.push_back(word(i));
  }
  return out;
}

std::string Vocabulary::to_json() const { return nlohmann::json(words_).dump(); }

Vocabulary Vocabulary::from_json(const std::string& json) {
  try {
    return from_words(nlohmann::json::parse(json).get<std::vector<std::string>>());
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("vocabulary is not a JSON list of words: ") +
                                json_error_text(e));
  }
}

}  // namespace attnkit::vision
