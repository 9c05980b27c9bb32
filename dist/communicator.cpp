#include "dist/communicator.h"

#include <algorithm>

#if RDD_WITH_CUDA
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif

namespace rdd::dist {

void Communicator::all_reduce_mean(Tensor& t) {
  all_reduce_sum(t);
  if (world_size() == 1) return;
  RDD_CHECK(t.device().is_cpu(), "all_reduce_mean: ", t.desc(), " (this communicator scales on the host)");
  const double inv = 1.0 / double(world_size());
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(double(p[i]) * inv);
  } else if (t.dtype() == DType::f64) {
    double* p = t.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= inv;
  } else {
    fail("all_reduce_mean: ", t.desc(), " is not a floating tensor");
  }
}

void SoloCommunicator::broadcast(Tensor&, int root) {
  RDD_CHECK(root == 0, "broadcast from rank ", root, " in a world of 1");
}

// ---------------------------------------------------------------------------------------------
// LocalGroup: N ranks in one process
// ---------------------------------------------------------------------------------------------

namespace {
enum Op { kSum = 0, kBroadcast = 1, kBarrier = 2 };
}

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(LocalGroup& g, int r) : group_(g), rank_(r) {}
  int rank() const override { return rank_; }
  int world_size() const override { return group_.world_; }
  void all_reduce_sum(Tensor& t) override { group_.collective(rank_, t, kSum, 0); }
  void broadcast(Tensor& t, int root) override { group_.collective(rank_, t, kBroadcast, root); }
  void barrier() override {
    Tensor none;
    group_.collective(rank_, none, kBarrier, 0);
  }

 private:
  LocalGroup& group_;
  int rank_;
};

LocalGroup::LocalGroup(int world_size) : world_(world_size), slots_(size_t(world_size), nullptr) {
  RDD_CHECK(world_size >= 1, "LocalGroup: world size must be ≥ 1, got ", world_size);
}

std::unique_ptr<Communicator> LocalGroup::rank(int r) {
  RDD_CHECK(r >= 0 && r < world_, "LocalGroup: rank ", r, " outside [0, ", world_, ")");
  return std::make_unique<LocalCommunicator>(*this, r);
}

void LocalGroup::poison(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (poisoned_.empty()) poisoned_ = why;
  cv_.notify_all();
}

void LocalGroup::collective(int rank, Tensor& t, int op, int root) {
  std::unique_lock<std::mutex> lock(mu_);
  auto check_poison = [&] { RDD_CHECK(poisoned_.empty(), "local group: ", poisoned_); };
  check_poison();
  // Wait until the previous round has fully emptied (every rank copied its result out).
  cv_.wait(lock, [&] { return departed_ == 0 || !poisoned_.empty(); });
  check_poison();
  if (op != kBarrier) {
    RDD_CHECK(t.device().is_cpu(), "local group: tensors must be on the CPU, got ", t.desc());
  }
  slots_[size_t(rank)] = &t;
  const uint64_t gen = generation_;
  if (++arrived_ == world_) {
    // The last rank to arrive combines, in rank order (deterministic), into result_.
    try {
      if (op == kSum) {
        const Tensor& first = *slots_[0];
        for (int r = 1; r < world_; ++r)
          RDD_CHECK(slots_[size_t(r)]->shape() == first.shape() && slots_[size_t(r)]->dtype() == first.dtype(),
                    "local group: all_reduce with mismatched tensors: rank 0 ", first.desc(), ", rank ", r, " ",
                    slots_[size_t(r)]->desc());
        result_ = first.clone();
        const int64_t n = first.numel();
        for (int r = 1; r < world_; ++r) {
          const Tensor& s = *slots_[size_t(r)];
          switch (first.dtype()) {
            case DType::f32: for (int64_t i = 0; i < n; ++i) result_.data<float>()[i] += s.data<float>()[i]; break;
            case DType::f64: for (int64_t i = 0; i < n; ++i) result_.data<double>()[i] += s.data<double>()[i]; break;
            case DType::i64: for (int64_t i = 0; i < n; ++i) result_.data<int64_t>()[i] += s.data<int64_t>()[i]; break;
            default: fail("local group: all_reduce of ", first.desc(), " (f32, f64 or i64 only)");
          }
        }
      } else if (op == kBroadcast) {
        RDD_CHECK(root >= 0 && root < world_, "local group: broadcast root ", root);
        result_ = slots_[size_t(root)]->clone();
      }
    } catch (const std::exception& e) {
      poisoned_ = e.what();
      cv_.notify_all();
      throw;
    }
    arrived_ = 0;
    departed_ = world_;
    ++generation_;
    cv_.notify_all();
  } else {
    cv_.wait(lock, [&] { return generation_ != gen || !poisoned_.empty(); });
    check_poison();
  }
  if (op != kBarrier) t.copy_from(result_);
  slots_[size_t(rank)] = nullptr;
  if (--departed_ == 0) {
    result_ = Tensor();
    cv_.notify_all();
  }
}

// ---------------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------------

std::vector<GradBucket> make_grad_buckets(const ParamStore& store, size_t bucket_bytes) {
  RDD_CHECK(bucket_bytes > 0, "make_grad_buckets: bucket size must be positive");
  std::vector<const Param*> params;
  for (const Param& p : store.entries())
    if (p.trainable) params.push_back(&p);
  std::vector<GradBucket> buckets;
  if (params.empty()) return buckets;
  // Walk parameters last-to-first; a parameter's slot is [offset, offset + padded size), and the
  // padded slots tile [0, padded_count) in registration order, so reverse walking gives contiguous,
  // descending ranges.
  auto slot_end = [&](size_t i) { return i + 1 < params.size() ? params[i + 1]->offset : store.padded_count(); };
  GradBucket cur;
  cur.end = store.padded_count();
  cur.begin = cur.end;
  for (size_t k = params.size(); k-- > 0;) {
    const Param* p = params[k];
    const int64_t end = slot_end(k);
    RDD_CHECK(end == cur.begin, "make_grad_buckets: parameter slots are not contiguous at '", p->name, "'");
    cur.begin = p->offset;
    cur.parameters.push_back(p->name);
    if (size_t(cur.end - cur.begin) * sizeof(float) >= bucket_bytes) {
      buckets.push_back(cur);
      cur = GradBucket{};
      cur.end = cur.begin = p->offset;
    }
  }
  if (!cur.parameters.empty()) buckets.push_back(cur);
  return buckets;
}

void all_reduce_gradients(Communicator& comm, ParamStore& store, const std::vector<GradBucket>& buckets) {
  if (!comm.data_parallel()) return;
  Tensor flat = store.flat_grads();
  for (const GradBucket& b : buckets) {
    Tensor slice = flat.slice(b.begin, b.end);
    comm.all_reduce_mean(slice);
  }
}

OverlappedGradReducer::OverlappedGradReducer(Communicator& comm, ParamStore& store, std::vector<GradBucket> buckets)
    : comm_(comm), store_(store), buckets_(std::move(buckets)) {}

void OverlappedGradReducer::begin_step() {
  next_ = 0;
  launched_early_ = 0;
}

void OverlappedGradReducer::launch(size_t i) {
  Tensor slice = store_.flat_grads().slice(buckets_[i].begin, buckets_[i].end);
  comm_.all_reduce_mean_async(slice);
}

void OverlappedGradReducer::ready(int64_t flat_begin) {
  if (!comm_.data_parallel()) return;
  // Buckets run last-parameters-first, so bucket i is complete once the frontier passes its begin.
  while (next_ < buckets_.size() && buckets_[next_].begin >= flat_begin) {
    launch(next_++);
    ++launched_early_;
  }
}

void OverlappedGradReducer::finish() {
  if (!comm_.data_parallel()) return;
  while (next_ < buckets_.size()) launch(next_++);
  comm_.wait_async();
}

}  // namespace rdd::dist
