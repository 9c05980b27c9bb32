#include "train/progress.h"

#include <fstream>

#include "train/metrics_log.h"

#include "harness.h"

using namespace rdd;
using namespace rdd::train;

TEST_CASE("format_duration") {
  CHECK(format_duration(12.4) == "12s");
  CHECK(format_duration(245) == "4m05s");
  CHECK(format_duration(3723) == "1h02m03s");
  CHECK(format_duration(NAN) == "?");
}

TEST_CASE("MetricsLog writes one JSON object per line and refuses an unwritable path") {
  const std::string path = test::temp_dir("metrics") + "/metrics.jsonl";
  {
    MetricsLog log(path);
    log.write({{"iter", 1}, {"loss", 2.5}});
    log.write({{"iter", 2}, {"loss", 2.0}});
  }
  std::ifstream in(path);
  std::string l1, l2, l3;
  std::getline(in, l1);
  std::getline(in, l2);
  CHECK_FALSE(std::getline(in, l3));
  CHECK(nlohmann::json::parse(l1)["iter"] == 1);
  CHECK(nlohmann::json::parse(l2)["loss"] == 2.0);
  {
    MetricsLog log(path, /*append=*/true);
    log.write({{"iter", 3}});
  }
  std::ifstream again(path);
  int lines = 0;
  for (std::string l; std::getline(again, l);) ++lines;
  CHECK(lines == 3);
  CHECK_THROWS_WITH_AS(MetricsLog("/nonexistent-dir/x/metrics.jsonl"), doctest::Contains("/nonexistent-dir/x/metrics.jsonl"),
                       Error);
}
