// tests/vision/train/caption_metrics_test.cpp: BLEU against NLTK's corpus_bleu on generated
// corpora, and CIDEr-D's defining properties.
#include <cstdlib>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/vision/test_support.h"
#include "vision/train/caption_metrics.h"

namespace attnkit::vision {
namespace {

using attnkit::testing::TempDir;

/// Random sentences over a small vocabulary so n-grams repeat and partly match.
struct Corpus {
  std::vector<std::vector<Tokens>> references;
  std::vector<Tokens> hypotheses;
};

Corpus random_corpus(std::mt19937& rng, size_t sentences, size_t vocabulary, size_t max_len) {
  std::uniform_int_distribution<size_t> word(0, vocabulary - 1), length(1, max_len),
      ref_count(1, 5);
  auto sentence = [&]() {
    Tokens t(length(rng));
    for (auto& w : t) w = "w" + std::to_string(word(rng));
    return t;
  };
  Corpus c;
  for (size_t i = 0; i < sentences; ++i) {
    std::vector<Tokens> refs(ref_count(rng));
    for (auto& r : refs) r = sentence();
    Tokens hypothesis = sentence();
    // Half the time, start from a reference and perturb it: realistic partial matches.
    if (rng() % 2) {
      hypothesis = refs[rng() % refs.size()];
      for (auto& w : hypothesis) {
        if (rng() % 4 == 0) w = "w" + std::to_string(word(rng));
      }
      if (rng() % 3 == 0 && hypothesis.size() > 1) hypothesis.pop_back();
    }
    c.references.push_back(refs);
    c.hypotheses.push_back(hypothesis);
  }
  return c;
}

TEST(Bleu, AgreesWithNltkCorpusBleu) {
  std::mt19937 rng(42);
  std::vector<Corpus> corpora;
  for (int i = 0; i < 40; ++i) {
    corpora.push_back(random_corpus(rng, 1 + rng() % 30, 3 + rng() % 20, 2 + rng() % 14));
  }
  // Edge cases: exact match, a one-word hypothesis (no 2-grams), ties in reference length.
  corpora.push_back(
      {{{{"a", "cat", "sat", "on", "the", "mat"}}}, {{"a", "cat", "sat", "on", "the", "mat"}}});
  corpora.push_back({{{{"a", "b", "c"}, {"a", "b", "c", "d", "e"}}}, {{"a"}}});
  corpora.push_back(
      {{{{"x", "y", "z", "w"}, {"y", "z", "w", "x", "v", "u"}}}, {{"y", "z", "w", "x", "v"}}});
  nlohmann::json input;
  for (const auto& c : corpora) {
    input["corpora"].push_back({{"references", c.references}, {"hypotheses", c.hypotheses}});
  }
  TempDir dir;
  std::ofstream(dir.file("in.json")) << input.dump();
  const std::string command = std::string(ATTNKIT_ORACLE_PYTHON) + " " + ATTNKIT_SOURCE_DIR +
                              "/tests/oracle/bleu_reference.py " + dir.file("in.json") + " " +
                              dir.file("out.json");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  nlohmann::json expected;
  std::ifstream(dir.file("out.json")) >> expected;
  ASSERT_EQ(expected["bleu"].size(), corpora.size());
  int nonzero = 0;
  for (size_t i = 0; i < corpora.size(); ++i) {
    const auto ours = corpus_bleu(corpora[i].references, corpora[i].hypotheses);
    for (size_t n = 0; n < 4; ++n) {
      EXPECT_NEAR(ours.bleu[n], expected["bleu"][i][n].get<double>(), 1e-6)
          << "corpus " << i << " BLEU-" << n + 1;
      nonzero += ours.bleu[n] > 0;
    }
  }
  EXPECT_GT(nonzero, 100);  // the comparison is not all zeros
  EXPECT_DOUBLE_EQ(corpus_bleu(corpora[40].references, corpora[40].hypotheses).bleu[3], 1.0);
}

TEST(CiderD, IsTenForAnExactUniqueMatchAndZeroForSharedOrMissingWords) {
  const std::vector<std::vector<Tokens>> refs = {{{"a", "red", "bag", "left", "of", "a", "shoe"}},
                                                 {{"two", "shirts", "above", "a", "dress"}}};
  std::vector<double> per_image;
  EXPECT_NEAR(cider_d(refs, {refs[0][0], refs[1][0]}, &per_image), 10.0, 1e-9);
  EXPECT_NEAR(per_image[1], 10.0, 1e-9);
  // Words that appear in every image's references carry no information (idf 0).
  const std::vector<std::vector<Tokens>> same = {{{"a", "bag"}}, {{"a", "bag"}}};
  EXPECT_NEAR(cider_d(same, {{"a", "bag"}, {"a", "bag"}}), 0.0, 1e-12);
  // No shared words: 0.
  EXPECT_NEAR(cider_d(refs, {{"zebra"}, {"zebra"}}), 0.0, 1e-12);
  // A partial match scores between; a longer wrong tail is penalised.
  const double partial = cider_d(refs, {{"a", "red", "bag"}, refs[1][0]}, &per_image);
  EXPECT_GT(per_image[0], 0.5);
  EXPECT_LT(per_image[0], 10.0);
  EXPECT_LT(partial, 10.0);
  EXPECT_THROW(cider_d(refs, {refs[0][0]}), std::invalid_argument);
}

TEST(PointingGame, CountsObjectWordsWhoseAttentionPeakIsInTheirBox) {
  // A 64x96 image with a 4x6 grid: each cell is 16x16 pixels.
  const std::vector<CaptionObject> objects = {{"bag", cv::Rect(0, 0, 32, 32)},
                                              {"dress", cv::Rect(64, 32, 32, 32)},
                                              {"bag", cv::Rect(64, 0, 16, 16)}};
  auto peak = [](int64_t row, int64_t col) {
    auto g = torch::full({4, 6}, 0.01);
    g[row][col] = 0.5;
    return g;
  };
  const std::vector<std::string> words = {"a",   "bag", "above", "a",   "dress",
                                          "and", "a",   "bag",   "coat"};
  const std::vector<torch::Tensor> grids = {peak(3, 5), peak(1, 1), peak(0, 0),
                                            peak(0, 0), peak(3, 5), peak(0, 0),
                                            peak(0, 0), peak(0, 4), peak(0, 0)};
  const auto score = pointing_game(words, grids, objects, cv::Rect2d(0, 0, 96, 64));
  // bag -> cell (1,1) centre (24, 24) in the first bag: hit; dress -> (88, 56): hit;
  // second bag -> cell (0,4) centre (72, 8): in the second bag's box: hit. "coat" names no
  // object and "a"/"above" are not objects: not counted.
  EXPECT_EQ(score.total, 3);
  EXPECT_EQ(score.hits, 3);
  const auto miss = pointing_game({"dress"}, {peak(0, 0)}, objects, cv::Rect2d(0, 0, 96, 64));
  EXPECT_EQ(miss.total, 1);
  EXPECT_EQ(miss.hits, 0);
  EXPECT_DOUBLE_EQ(miss.accuracy(), 0.0);
  EXPECT_THROW(pointing_game({"bag"}, {}, objects, cv::Rect2d(0, 0, 96, 64)),
               std::invalid_argument);
  // A grid that covers a centre crop: cell (0, 0) maps into the crop, not the image corner.
  const auto cropped = pointing_game({"dress"}, {peak(0, 0)}, objects, cv::Rect2d(64, 32, 32, 32));
  EXPECT_EQ(cropped.hits, 1);
}

// What data-parallel validation relies on: BLEU's counts add up over parts of a corpus, and an
// image's CIDEr-D depends on its own caption and the corpus' references only.
TEST(CaptionMetrics, PartsOfACorpusAddUpToTheWhole) {
  const std::vector<std::vector<Tokens>> references = {
      {{"a", "red", "shoe", "left", "of", "a", "bag"}, {"a", "shoe", "and", "a", "bag"}},
      {{"a", "coat", "above", "a", "shirt"}, {"a", "shirt", "below", "a", "coat"}},
      {{"a", "sandal"}, {"one", "sandal", "on", "black"}},
      {{"a", "bag", "right", "of", "a", "dress"}, {"a", "dress", "and", "a", "bag"}},
      {{"two", "shoes"}, {"a", "pair", "of", "shoes"}}};
  const std::vector<Tokens> hypotheses = {{"a", "shoe", "left", "of", "a", "bag"},
                                          {"a", "coat", "above", "a", "coat"},
                                          {"sandal"},
                                          {"a", "dress", "and", "a", "bag", "and", "a", "bag"},
                                          {"a", "pair", "of", "shoes"}};
  const auto whole = corpus_bleu(references, hypotheses);
  BleuScores summed;
  for (const auto& [first, last] : {std::pair<size_t, size_t>{0, 2}, {2, 5}}) {
    const std::vector<std::vector<Tokens>> refs(references.begin() + first,
                                                references.begin() + last);
    const std::vector<Tokens> hyps(hypotheses.begin() + first, hypotheses.begin() + last);
    const auto part = corpus_bleu(refs, hyps);
    for (size_t n = 0; n < 4; ++n) {
      summed.matched[n] += part.matched[n];
      summed.total[n] += part.total[n];
    }
    summed.hypothesis_length += part.hypothesis_length;
    summed.reference_length += part.reference_length;
  }
  const auto from_parts = bleu_from_counts(summed);
  ASSERT_GT(whole.bleu[3], 0.0);
  for (size_t n = 0; n < 4; ++n) EXPECT_DOUBLE_EQ(from_parts.bleu[n], whole.bleu[n]) << n;
  EXPECT_DOUBLE_EQ(from_parts.brevity_penalty, whole.brevity_penalty);

  std::vector<double> per_image, only_two;
  const double mean = cider_d(references, hypotheses, &per_image);
  std::vector<Tokens> two_only(hypotheses.size());
  two_only[1] = hypotheses[1];
  two_only[3] = hypotheses[3];
  cider_d(references, two_only, &only_two);
  EXPECT_GT(per_image[3], 0.0);
  EXPECT_DOUBLE_EQ(only_two[1], per_image[1]);
  EXPECT_DOUBLE_EQ(only_two[3], per_image[3]);
  double sum = 0;
  for (double v : per_image) sum += v;
  EXPECT_NEAR(sum / 5, mean, 1e-12);
}

}  // namespace
}  // namespace attnkit::vision
