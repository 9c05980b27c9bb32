#include "apps/flags.h"

#include "engine/error.h"

namespace rdd::apps {

void add_launch_flags(CLI::App& command, dist::LaunchOptions& launch) {
  const char* group = "Multi-GPU / multi-node";
  dist::LaunchSpec& spec = launch.spec;
  command
      .add_option("--gpus", spec.nproc_per_node,
                  "Worker processes on this node, one per GPU (cuda:0..N-1), over NCCL. Without "
                  "it: one process, no NCCL; --gpus 1: one worker through the data-parallel "
                  "path (its host-side overhead; one rank moves no data)")
      ->check(CLI::Range(1, 1024))
      ->each([&launch](const std::string&) { launch.gpus_given = true; })
      ->group(group);
  command.add_option("--nnodes", spec.nnodes, "Number of nodes taking part")->check(CLI::Range(1, 1 << 16))->group(group);
  command.add_option("--node-rank", spec.node_rank, "This node's index, 0..nnodes-1 (node 0 hosts rank 0)")
      ->check(CLI::Range(0, 1 << 16))
      ->group(group);
  command.add_option("--master-addr", spec.master_addr, "Address of node 0, where rank 0 listens for the rendezvous")
      ->group(group);
  command.add_option("--master-port", spec.master_port, "TCP port of the rendezvous on node 0 (0: any free port, one node only)")
      ->check(CLI::Range(0, 65535))
      ->group(group);
  command.add_option("--rendezvous-timeout", launch.rendezvous_timeout_s,
                     "Seconds to wait for every rank to join (and for barriers)")
      ->check(CLI::PositiveNumber)
      ->group(group);
  command.add_option("--nccl-timeout", launch.nccl_timeout_s,
                     "Seconds a collective may wait for the other ranks before the run is aborted")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(group);
}

void check_no_device_with_gpus(const std::string& device) {
  RDD_CHECK(device == "auto", "--device ", device,
            " with --gpus: each worker uses its own GPU (rank r on cuda:<local rank>); drop --device");
}

}  // namespace rdd::apps
