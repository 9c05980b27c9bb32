// The flags several subcommands share (apps/flags.h).
#include "apps/flags.h"

#include "harness.h"

using namespace rdd;
using namespace rdd::apps;

TEST_CASE("launch flags: parsed by the subcommand and turned into a spec that re-runs this command line") {
  CLI::App app("rdd");
  CLI::App* train = app.add_subcommand("train");
  dist::LaunchOptions flags;
  add_launch_flags(*train, flags);
  SUBCASE("defaults") {
    app.parse(std::vector<std::string>{"train"});  // CLI11 takes the arguments reversed
    CHECK(flags.spec.nproc_per_node == 1);
    CHECK(flags.spec.nnodes == 1);
    CHECK(flags.spec.master_port == 29500);
    CHECK(flags.rendezvous_timeout_s == 300);
    CHECK_FALSE(flags.distributed());  // one process, no NCCL
  }
  SUBCASE("--gpus 1 given: one launched worker through the data-parallel path") {
    app.parse(std::vector<std::string>{"1", "--gpus", "train"});
    CHECK(flags.spec.nproc_per_node == 1);
    CHECK(flags.distributed());
  }
  SUBCASE("several nodes of one GPU") {
    app.parse(std::vector<std::string>{"2", "--nnodes", "train"});
    CHECK(flags.distributed());
  }
  SUBCASE("all given") {
    app.parse(std::vector<std::string>{"30", "--rendezvous-timeout", "29600", "--master-port", "10.0.0.1",
                                       "--master-addr", "1", "--node-rank", "2", "--nnodes", "4", "--gpus", "train"});
    CHECK(flags.rendezvous_timeout_s == 30);
    CHECK(flags.distributed());
    const dist::LaunchSpec& spec = flags.spec;
    CHECK(spec.program == "/proc/self/exe");
    CHECK(spec.args.empty());  // this process's own command line
    CHECK(spec.nproc_per_node == 4);
    CHECK(spec.nnodes == 2);
    CHECK(spec.node_rank == 1);
    CHECK(spec.master_addr == "10.0.0.1");
    CHECK(spec.master_port == 29600);
  }
  SUBCASE("refused") {
    CHECK_THROWS_AS(app.parse(std::vector<std::string>{"0", "--gpus", "train"}), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse(std::vector<std::string>{"70000", "--master-port", "train"}), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse(std::vector<std::string>{"0", "--rendezvous-timeout", "train"}), CLI::ValidationError);
  }
}
