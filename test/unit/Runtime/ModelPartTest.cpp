//===- ModelPartTest.cpp - Two models in one artifact ---------------------===//
//
// A speculative artifact carries the target's sections and the draft's,
// named "draft.*". Model::fromReader picks each by ModelLoadOptions::part,
// and the Speculation section is parsed with the main model.
//
//===----------------------------------------------------------------------===//

#include "TinyModel.h"

#include "kiln/runtime/Artifact.h"
#include "kiln/runtime/Model.h"

#include <gtest/gtest.h>

using namespace kiln::runtime;
using namespace kiln::runtime::testing;

namespace {

StatusOr<std::shared_ptr<const Model>> loadPart(ArtifactWriter &writer,
                                                const std::string &part = "") {
  auto reader = ArtifactReader::fromBytes(writer.serialize());
  if (!reader.isOk())
    return reader.status();
  ModelLoadOptions options;
  options.part = part;
  return Model::fromReader(std::move(reader).value(), ".", options);
}

/// Adds one TinyModel's sections, its weights embedded, names prefixed.
void addModel(ArtifactWriter &writer, TinyModel m, const std::string &prefix) {
  std::vector<uint8_t> weights;
  for (size_t i = 0; i < m.weights.size(); ++i) {
    m.weights.weights[i].offset = weights.size();
    weights.insert(weights.end(), m.data[i].begin(), m.data[i].end());
  }
  ASSERT_TRUE(writer
                  .addSection(SectionKind::Config, prefix + "config",
                              std::string_view(m.config.serialize()))
                  .isOk());
  ASSERT_TRUE(writer
                  .addSection(SectionKind::LaunchPlan, prefix + "launch_plan",
                              m.plan.serialize())
                  .isOk());
  ASSERT_TRUE(writer
                  .addSection(SectionKind::WeightRefs, prefix + "weight_refs",
                              m.weights.serialize())
                  .isOk());
  ASSERT_TRUE(
      writer.addSection(SectionKind::Weights, prefix + "weights", weights)
          .isOk());
}

TEST(ModelPartTest, LoadsTargetAndDraftFromOneArtifact) {
  TinyModel target = makeTinyModel(DType::F32, 7);
  TinyModel draft = makeTinyModel(DType::F32, 8);
  draft.config.contextLength = 24; // tells the two configs apart
  ArtifactWriter writer;
  addModel(writer, target, "");
  ASSERT_TRUE(writer
                  .addSection(SectionKind::Speculation, "speculation",
                              std::string_view("kiln_speculation=1\nk=3\n"
                                               "draft=model\n"))
                  .isOk());
  addModel(writer, draft, "draft.");

  auto main = loadPart(writer);
  ASSERT_TRUE(main.isOk()) << main.status();
  EXPECT_EQ((*main)->config().contextLength, 32);
  ASSERT_NE((*main)->speculation(), nullptr);
  EXPECT_EQ((*main)->speculation()->k, 3);

  auto loaded = loadPart(writer, "draft");
  ASSERT_TRUE(loaded.isOk()) << loaded.status();
  EXPECT_EQ((*loaded)->config().contextLength, 24);
  EXPECT_EQ((*loaded)->speculation(), nullptr);
  // The draft's weights, not the target's.
  ASSERT_EQ((*loaded)->weights().size(), draft.weights.size());
  Span<const uint8_t> w = (*loaded)->weightBytes(0);
  EXPECT_TRUE(std::equal(w.begin(), w.end(), draft.data[0].begin()));
}

TEST(ModelPartTest, MissingPartsAndBadSpeculationAreErrors) {
  ArtifactWriter writer;
  addModel(writer, makeTinyModel(), "");
  auto missing = loadPart(writer, "draft");
  EXPECT_EQ(missing.status().code(), StatusCode::NotFound);
  EXPECT_NE(missing.status().message().find(
                "no 'draft.config' section (config): it carries no draft"),
            std::string::npos)
      << missing.status();

  ASSERT_TRUE(writer
                  .addSection(SectionKind::Speculation, "speculation",
                              std::string_view("kiln_speculation=1\nk=0\n"
                                               "draft=model\n"))
                  .isOk());
  auto bad = loadPart(writer);
  EXPECT_EQ(bad.status().code(), StatusCode::DataLoss);
}

} // namespace
