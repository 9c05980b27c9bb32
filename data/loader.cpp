#include "data/loader.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace rdd::data {

// ----------------------------------------------------------------------------------------------
// SampleOrder
// ----------------------------------------------------------------------------------------------

SampleOrder::SampleOrder(size_t dataset_size, uint64_t seed, int rank, int world, bool shuffle)
    : n_(dataset_size), seed_(seed), rank_(rank), world_(world), shuffle_(shuffle) {
  RDD_CHECK(n_ > 0, "loader: the dataset is empty");
  RDD_CHECK(n_ < (size_t(1) << 32), "loader: dataset of ", n_, " samples is too large");
  RDD_CHECK(world >= 1 && rank >= 0 && rank < world, "loader: rank ", rank, " of world ", world, " is invalid");
  const int64_t n = int64_t(n_);
  if (shuffle_) {
    per_rank_ = (n + world - 1) / world;
    padded_ = per_rank_ * world;
  } else {
    per_rank_ = n > rank ? (n - rank + world - 1) / world : 0;
    padded_ = n;
  }
}

std::vector<uint32_t> SampleOrder::permutation(int64_t epoch) const {
  std::vector<uint32_t> p(n_);
  for (size_t i = 0; i < n_; ++i) p[i] = uint32_t(i);
  // Fisher–Yates driven by Philox(seed, epoch): the same on every rank.
  PhiloxStream rng(seed_ ^ 0x5a3b1e0d00000000ull, uint64_t(epoch));
  for (size_t i = n_ - 1; i > 0; --i) std::swap(p[i], p[size_t(rng.next_int(0, int64_t(i) + 1))]);
  return p;
}

size_t SampleOrder::index(int64_t k, uint64_t* slot) const {
  RDD_CHECK(k >= 0, "SampleOrder: negative position ", k);
  if (!shuffle_) {
    RDD_CHECK(k < per_rank_, "SampleOrder: position ", k, " past the end of rank ", rank_, "'s shard (", per_rank_, ")");
    const size_t i = size_t(rank_) + size_t(k) * size_t(world_);
    if (slot) *slot = i;
    return i;
  }
  const int64_t epoch = k / per_rank_;
  const int64_t pos = (k % per_rank_) * world_ + rank_;  // position in the padded epoch
  if (slot) *slot = uint64_t(epoch) * uint64_t(padded_) + uint64_t(pos);
  std::shared_ptr<const std::vector<uint32_t>> perm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = perms_.find(epoch);
    if (it != perms_.end()) perm = it->second;
  }
  if (!perm) {
    perm = std::make_shared<const std::vector<uint32_t>>(permutation(epoch));
    std::lock_guard<std::mutex> lock(mu_);
    perms_[epoch] = perm;
    while (perms_.size() > 4) perms_.erase(perms_.begin());
  }
  return (*perm)[size_t(pos % int64_t(n_))];  // positions ≥ n wrap to the head (padding)
}

// ----------------------------------------------------------------------------------------------
// Loader
// ----------------------------------------------------------------------------------------------

Loader::Loader(std::shared_ptr<const Dataset> dataset, AugmentConfig augment, LoaderConfig config)
    : ds_(std::move(dataset)),
      aug_(augment),
      cfg_(config),
      order_(ds_ ? ds_->size() : 0, config.seed, config.rank, config.world, config.train) {
  RDD_CHECK(cfg_.batch_size >= 1, "loader: batch size ", cfg_.batch_size, " must be ≥ 1");
  RDD_CHECK(cfg_.workers >= 1, "loader: workers ", cfg_.workers, " must be ≥ 1");
  RDD_CHECK(cfg_.prefetch >= 1, "loader: prefetch ", cfg_.prefetch, " must be ≥ 1");
  RDD_CHECK(cfg_.start_iteration >= 0, "loader: start iteration ", cfg_.start_iteration, " is negative");
  if (cfg_.train) {
    end_ = cfg_.max_iterations > 0 ? cfg_.max_iterations : -1;
  } else {
    end_ = (order_.per_rank_epoch() + cfg_.batch_size - 1) / cfg_.batch_size;
  }
  RDD_CHECK(end_ < 0 || cfg_.start_iteration <= end_, "loader: start iteration ", cfg_.start_iteration,
            " is past the end (", end_, " batches)");
  next_it_ = consumed_ = cfg_.start_iteration;
  for (int i = 0; i < cfg_.workers; ++i) threads_.emplace_back([this] { worker_main(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

int64_t Loader::position() const {
  std::lock_guard<std::mutex> lock(mu_);
  return consumed_;
}

size_t Loader::cached_samples() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_.size();
}

size_t Loader::cached_bytes() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_bytes_;
}

std::shared_ptr<const Sample> Loader::sample(size_t index) {
  if (cfg_.cache) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(index);
    if (it != cache_.end()) return it->second;
  }
  auto s = std::make_shared<const Sample>(ds_->load(index));
  if (cfg_.cache) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (!cache_.count(index) && (cfg_.cache_limit_bytes == 0 || cache_bytes_ + s->bytes() <= cfg_.cache_limit_bytes)) {
      cache_[index] = s;
      cache_bytes_ += s->bytes();
    }
  }
  return s;
}

void Loader::allocate(Batch& b, int64_t count, int64_t h, int64_t w) const {
  const Shape is{count, 3, h, w}, ls{count, h, w};
  if (!b.images.defined() || b.images.shape() != is)
    b.images = cfg_.pinned ? Tensor::empty_pinned(is, DType::f32) : Tensor::empty(is, DType::f32);
  if (!b.labels.defined() || b.labels.shape() != ls)
    b.labels = cfg_.pinned ? Tensor::empty_pinned(ls, DType::i32) : Tensor::empty(ls, DType::i32);
}

void Loader::build_eval(int64_t iteration, Batch& b) {
  const int64_t first = iteration * cfg_.batch_size;
  const int64_t count = std::min<int64_t>(cfg_.batch_size, order_.per_rank_epoch() - first);
  b.iteration = iteration;
  b.indices.assign(size_t(count), 0);
  for (int64_t j = 0; j < count; ++j) b.indices[size_t(j)] = int64_t(order_.index(first + j));
  std::vector<std::shared_ptr<const Sample>> samples;
  for (int64_t j = 0; j < count; ++j) samples.push_back(sample(size_t(b.indices[size_t(j)])));
  const int h = samples[0]->image.height, w = samples[0]->image.width;
  for (int64_t j = 1; j < count; ++j)
    RDD_CHECK(samples[size_t(j)]->image.height == h && samples[size_t(j)]->image.width == w, "loader: eval batch of ",
              count, " images of different sizes: ", ds_->files[size_t(b.indices[0])].image, " is ", w, "x", h, " but ",
              ds_->files[size_t(b.indices[size_t(j)])].image, " is ", samples[size_t(j)]->image.width, "x",
              samples[size_t(j)]->image.height, " (use batch size 1 for evaluation)");
  allocate(b, count, h, w);
  const size_t plane = size_t(h) * size_t(w);
  for (int64_t j = 0; j < count; ++j)
    transform_eval(*samples[size_t(j)], aug_.norm, b.images.data<float>() + size_t(j) * 3 * plane,
                   b.labels.data<int32_t>() + size_t(j) * plane);
}

// Work units: in training, one sample of a batch (all workers cooperate on the batches inside the
// prefetch window); in evaluation, a whole batch (its buffer size depends on its images).
void Loader::worker_main() {
  std::string bind_error;  // reported by every batch this worker takes part in
  try {
    bind_thread_to_device(cfg_.device);
  } catch (const std::exception& e) {
    bind_error = e.what();
  }
  const size_t img_stride = size_t(3) * size_t(aug_.crop_h) * size_t(aug_.crop_w);
  const size_t lab_stride = size_t(aug_.crop_h) * size_t(aug_.crop_w);
  for (;;) {
    int64_t it = 0, j = 0;
    float* img = nullptr;
    int32_t* lab = nullptr;
    size_t index = 0;
    uint64_t slot_id = 0;
    Batch eval_batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] {
        return stop_ || ((end_ < 0 || next_it_ < end_) && next_it_ < consumed_ + cfg_.prefetch);
      });
      if (stop_) return;
      it = next_it_;
      if (!cfg_.train) {
        ++next_it_;
        slots_[it].remaining = 1;
        if (!free_.empty()) {
          eval_batch = std::move(free_.back());
          free_.pop_back();
        }
      } else {
        Slot& s = slots_[it];
        if (next_j_ == 0) {  // first claim of this batch: its indices, slots and buffers
          s.batch.iteration = it;
          s.batch.indices.assign(size_t(cfg_.batch_size), 0);
          s.sample_slots.assign(size_t(cfg_.batch_size), 0);
          for (int64_t k = 0; k < cfg_.batch_size; ++k)
            s.batch.indices[size_t(k)] =
                int64_t(order_.index(it * cfg_.batch_size + k, &s.sample_slots[size_t(k)]));
          if (!free_.empty()) {
            Batch recycled = std::move(free_.back());
            free_.pop_back();
            s.batch.images = recycled.images;
            s.batch.labels = recycled.labels;
          }
          try {
            allocate(s.batch, cfg_.batch_size, aug_.crop_h, aug_.crop_w);
          } catch (const std::exception& e) {  // out of pinned memory: next() reports it (no std::terminate)
            s.error = e.what();
          }
          s.remaining = cfg_.batch_size;
        }
        j = next_j_++;
        if (next_j_ == cfg_.batch_size) {
          next_j_ = 0;
          ++next_it_;
        }
        if (s.error.empty() && bind_error.empty()) {
          img = s.batch.images.data<float>() + size_t(j) * img_stride;
          lab = s.batch.labels.data<int32_t>() + size_t(j) * lab_stride;
        }
        index = size_t(s.batch.indices[size_t(j)]);
        slot_id = s.sample_slots[size_t(j)];
      }
    }
    std::string error;
    try {
      if (!bind_error.empty()) fail(bind_error);
      if (cfg_.train && !img) {
        // this batch already holds its error (its buffers could not be allocated)
      } else if (cfg_.train) {
        const std::shared_ptr<const Sample> s = sample(index);
        PhiloxStream rng = sample_stream(cfg_.seed, slot_id);
        augment_train(*s, aug_, rng, img, lab);
      } else {
        build_eval(it, eval_batch);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Slot& s = slots_[it];
      if (!cfg_.train) {
        s.batch = std::move(eval_batch);
        s.batch.iteration = it;
      }
      if (!error.empty() && s.error.empty()) s.error = error;
      done = --s.remaining == 0;
    }
    if (done) cv_ready_.notify_all();
  }
}

bool Loader::next(Batch& out) {
  Slot slot;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (end_ >= 0 && consumed_ >= end_) return false;
    cv_ready_.wait(lock, [&] {
      auto f = slots_.find(consumed_);
      return f != slots_.end() && f->second.remaining == 0;
    });
    auto node = slots_.extract(consumed_);
    slot = std::move(node.mapped());
    ++consumed_;
  }
  cv_work_.notify_all();
  if (!slot.error.empty()) fail(slot.error);
  out = std::move(slot.batch);
  return true;
}

void Loader::recycle(Batch&& b) {
  if (!b.images.defined()) return;
  // The workers will overwrite these pinned buffers: an asynchronous copy to the GPU still reading them
  // must be complete first.
  if (cfg_.device.is_cuda() && b.images.is_pinned()) synchronize(cfg_.device);
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.size() < size_t(cfg_.prefetch + cfg_.workers)) free_.push_back(std::move(b));
}

}  // namespace rdd::data
