//===- kiln-tokenize.cpp - Text to token ids with a SentencePiece model ---===//
//
//   kiln-tokenize tokenizer.model text.txt
//
// Prints `bos ID` (-1 when the model has none) on the first line and the
// token ids of the text, space-separated, on the second. kiln-compile runs it to
// tokenize --calibration-text: kiln-compile links the ONNX importer's
// protobuf, with which the SentencePiece library cannot share a process
// (their protobuf versions' checks abort), so tokenization happens in this
// runtime-only process.
//
//===----------------------------------------------------------------------===//

#include "kiln/runtime/Tokenizer.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kiln-tokenize tokenizer.model text.txt\n");
    return 2;
  }
  auto tokenizer = kiln::runtime::Tokenizer::loadFromFile(argv[1]);
  if (!tokenizer.isOk()) {
    std::fprintf(stderr, "kiln-tokenize: %s\n",
                 tokenizer.status().message().c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "kiln-tokenize: cannot read '%s'\n", argv[2]);
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto ids = (*tokenizer)->encode(text.str());
  if (!ids.isOk()) {
    std::fprintf(stderr, "kiln-tokenize: %s\n", ids.status().message().c_str());
    return 1;
  }
  std::printf("bos %d\n", (*tokenizer)->bosId());
  for (size_t i = 0; i < ids->size(); ++i)
    std::printf(i ? " %d" : "%d", (*ids)[i]);
  std::printf("\n");
  return 0;
}
