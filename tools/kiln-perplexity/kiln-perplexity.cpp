//===- kiln-perplexity.cpp - Perplexity of a .kiln model on a text --------===//
//
//   kiln-perplexity m.kiln text.txt [--window 512] [--stride 256]
//                   [--max-tokens N] [--device auto|host|cuda] [--no-bos]
//                   [--dump-ids FILE]
//   kiln-perplexity m.kiln ids.txt --token-ids [...]
//
// Tokenizes the text with the artifact's tokenizer (BOS first unless
// --no-bos), keeps the first --max-tokens tokens, and scores them with
// overlapping windows as Hugging Face's strided perplexity does: windows of
// `window` tokens start every `stride` tokens; the first window scores each
// of its tokens after the first from the tokens before it, every later
// window scores only the tokens the previous windows did not (its last
// `stride` ones, or fewer at the end), so each of them sees at least
// window - stride tokens of context. Every token after the first is scored
// exactly once. Prints the tokens scored, the mean negative log-likelihood
// (natural log) and the perplexity exp(mean NLL). --dump-ids writes the
// token ids (BOS included) to FILE, whitespace-separated; --token-ids reads
// such a file instead of text, so a runtime built without SentencePiece
// (a bare GPU machine) scores exactly the same tokens. Links only
// KilnRuntime.
//
//===----------------------------------------------------------------------===//

#include "../common/RuntimeToolArgs.h"

#include "kiln/runtime/Engine.h"
#include "kiln/runtime/MappedFile.h"
#include "kiln/runtime/Model.h"
#include "kiln/runtime/Tokenizer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace kiln;
using namespace kiln::runtime;

static int usage(const std::string &error) {
  std::fprintf(stderr, "kiln-perplexity: %s\n", error.c_str());
  std::fprintf(stderr, "usage: kiln-perplexity m.kiln text.txt [--window 512] "
                       "[--stride 256] [--max-tokens N] [--device "
                       "auto|host|cuda] [--no-bos] [--dump-ids FILE]\n"
                       "       kiln-perplexity m.kiln ids.txt --token-ids "
                       "[...]\n");
  return 2;
}

static int fail(const Status &status) {
  std::fprintf(stderr, "kiln-perplexity: error: %s\n",
               status.toString().c_str());
  return 1;
}

/// The text's token ids through the artifact's tokenizer, BOS first when
/// `bos`.
static StatusOr<std::vector<int32_t>>
tokenizeText(const Model &model, const std::string &path, int64_t maxTokens,
             bool bos) {
  if (model.tokenizerBytes().empty())
    return makeError(StatusCode::FailedPrecondition,
                     "the artifact has no tokenizer (compile with "
                     "--tokenizer)");
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                        Tokenizer::loadFromBytes(model.tokenizerBytes()));
  KILN_ASSIGN_OR_RETURN(MappedFile text, MappedFile::open(path));
  std::string_view all(reinterpret_cast<const char *>(text.data()),
                       text.size());
  // With --max-tokens, tokenizing a prefix (cut at a line end, generous at
  // 8 bytes a token) gives the same first tokens as the whole text, much
  // faster on large files; the whole text is the fallback.
  std::string_view source = all;
  if (maxTokens > 0 && (uint64_t)maxTokens * 8 < all.size()) {
    size_t cut = all.rfind('\n', maxTokens * 8);
    if (cut != std::string_view::npos)
      source = all.substr(0, cut + 1);
  }
  auto encoded = tokenizer->encode(source);
  if (encoded.isOk() && source.size() < all.size() &&
      (int64_t)encoded->size() < maxTokens)
    encoded = tokenizer->encode(all);
  if (!encoded.isOk())
    return encoded.status();
  std::vector<int32_t> tokens;
  if (bos)
    tokens.push_back(model.config().bosTokenId);
  tokens.insert(tokens.end(), encoded->begin(), encoded->end());
  return tokens;
}

/// Whitespace-separated token ids (what --dump-ids writes).
static StatusOr<std::vector<int32_t>> readTokenIds(const std::string &path) {
  KILN_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  std::string text(reinterpret_cast<const char *>(file.data()), file.size());
  std::vector<int32_t> tokens;
  const char *p = text.c_str();
  while (*p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
      ++p;
    if (!*p)
      break;
    char *end = nullptr;
    long v = std::strtol(p, &end, 10);
    if (end == p)
      return makeError(StatusCode::InvalidArgument, path, ": byte ",
                       p - text.c_str(), " is not a token id");
    tokens.push_back(static_cast<int32_t>(v));
    p = end;
  }
  return tokens;
}

int main(int argc, char **argv) {
  tools::Args args(argc, argv,
                   {"window", "stride", "max-tokens", "device", "dump-ids"},
                   {"no-bos", "verbose", "token-ids"});
  if (!args.error.empty())
    return usage(args.error);
  if (args.positionals.size() != 2)
    return usage("expected an artifact and a text file");
  int64_t window = args.integer("window", 512);
  int64_t stride = args.integer("stride", 256);
  int64_t maxTokens = args.integer("max-tokens", 0);
  if (!args.error.empty())
    return usage(args.error);
  if (window < 2 || stride < 1 || stride > window || maxTokens < 0)
    return usage("--window must be at least 2 and --stride in [1, window]");

  auto model = Model::load(args.positionals[0]);
  if (!model.isOk())
    return fail(model.status());
  const ModelConfig &config = (*model)->config();
  if (window > config.contextLength)
    return fail(makeError(StatusCode::InvalidArgument, "--window ", window,
                          " exceeds the model's context of ",
                          config.contextLength, " tokens"));
  std::vector<int32_t> tokens;
  if (args.has("token-ids")) {
    auto read = readTokenIds(args.positionals[1]);
    if (!read.isOk())
      return fail(read.status());
    tokens = std::move(read).value();
  } else {
    auto encoded = tokenizeText(**model, args.positionals[1], maxTokens,
                                !args.has("no-bos"));
    if (!encoded.isOk())
      return fail(encoded.status());
    tokens = std::move(encoded).value();
  }
  if (maxTokens > 0 && (int64_t)tokens.size() > maxTokens)
    tokens.resize(maxTokens);
  if (args.has("dump-ids")) {
    std::FILE *f = std::fopen(args.str("dump-ids").c_str(), "w");
    if (!f)
      return fail(makeError(StatusCode::NotFound, "cannot write '",
                            args.str("dump-ids"), "'"));
    for (size_t i = 0; i < tokens.size(); ++i)
      std::fprintf(f, i + 1 < tokens.size() ? "%d " : "%d\n", tokens[i]);
    std::fclose(f);
  }
  int64_t n = tokens.size();
  if (n < 2)
    return fail(makeError(StatusCode::InvalidArgument,
                          "the text has fewer than 2 tokens"));

  EngineOptions options;
  options.device = args.str("device", "auto");
  options.maxSequences = 1;
  auto engine = Engine::create(*model, options);
  if (!engine.isOk())
    return fail(engine.status());

  auto start = std::chrono::steady_clock::now();
  int64_t vocab = config.vocabSize, scored = 0, windows = 0, processed = 0;
  double nll = 0;
  int64_t prevEnd = 0;
  for (int64_t begin = 0;; begin += stride) {
    int64_t end = std::min(begin + window, n);
    std::vector<int32_t> chunk(tokens.begin() + begin, tokens.begin() + end);
    auto logits = (*engine)->forwardAll(chunk);
    if (!logits.isOk())
      return fail(logits.status());
    ++windows;
    processed += end - begin;
    // Token j (j >= 1) is predicted by the logits of row j - 1 - begin.
    for (int64_t j = std::max(prevEnd, begin + 1); j < end; ++j) {
      const float *row = logits->data() + (j - 1 - begin) * vocab;
      double mx = row[0];
      for (int64_t k = 1; k < vocab; ++k)
        mx = std::max(mx, (double)row[k]);
      double sum = 0;
      for (int64_t k = 0; k < vocab; ++k)
        sum += std::exp(row[k] - mx);
      nll += mx + std::log(sum) - row[tokens[j]];
      ++scored;
    }
    prevEnd = end;
    if (args.has("verbose"))
      std::fprintf(stderr, "kiln-perplexity: window %lld [%lld, %lld): "
                           "running perplexity %.4f\n",
                   (long long)windows, (long long)begin, (long long)end,
                   std::exp(nll / scored));
    if (end == n)
      break;
  }
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  double mean = nll / scored;
  std::printf("%s: %lld tokens (window %lld, stride %lld): %lld windows, "
              "%lld tokens scored, mean NLL %.4f, perplexity %.4f\n",
              args.positionals[1].c_str(), (long long)n, (long long)window,
              (long long)stride, (long long)windows, (long long)scored, mean,
              std::exp(mean));
  std::fprintf(stderr,
               "kiln-perplexity: %s device, %lld tokens through the model in "
               "%.1f s (%.0f tok/s)\n",
               (*engine)->device().name().c_str(), (long long)processed,
               seconds, processed / seconds);
  return std::isfinite(mean) ? 0 : 1;
}
