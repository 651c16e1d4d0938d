// Memory planned once (issue 35): for every position method, after the first step, a training step (forward, backward, the
// gradient reduction and AdamW) and a decode step (sampling, feeding the token to a full or a
// sliding KV cache) allocate nothing. Counted by this binary's replacement of the global
// operator new (every std container's allocation) and by glibc's count of bytes in use (what
// malloc hands out, oneDNN's and OpenMP's included), both around the loop.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "generate/generate.h"
#include "model/model.h"
#include "model/params.h"
#include "model_util.h"
#include "positions.h"
#include "train/sharded_adamw.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALIBI_OWN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALIBI_OWN_MALLOC 1
#endif
#endif

namespace {
std::atomic<int64_t> g_news{0};  // operator new calls since the start of the process
}  // namespace

#ifndef ALIBI_OWN_MALLOC  // a sanitizer replaces operator new itself
void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const size_t al = size_t(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
#endif

namespace alibi {
namespace {

size_t heap_in_use() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// The operator new calls and the change of the heap's bytes in use over f().
struct Allocs {
  int64_t news = 0;
  int64_t heap = 0;
};
template <class F>
Allocs count(F&& f) {
  const int64_t n0 = g_news.load();
  const size_t h0 = heap_in_use();
  f();
  return {g_news.load() - n0, int64_t(heap_in_use()) - int64_t(h0)};
}

#ifdef ALIBI_OWN_MALLOC
#define SKIP_UNDER_SANITIZER() GTEST_SKIP() << "the sanitizer's allocator replaces the counter"
#else
#define SKIP_UNDER_SANITIZER() (void)0
#endif

ModelConfig config(PosKind pos) {
  ModelConfig c = test::small_model(pos, 2, 64);
  c.d_model = 32;
  c.heads = 4;
  c.ffn = 64;
  return c;
}

// The counter sees what it should: a vector's allocation counts.
TEST(NoAllocInLoop, TheCounterCountsAnAllocation) {
  SKIP_UNDER_SANITIZER();
  const Allocs a = count([] {
    static std::vector<float>* volatile kept;  // volatile: the pair is not elided
    kept = new std::vector<float>(1000);
    delete kept;
  });
  EXPECT_EQ(a.news, 2);
}

// Four training steps after the first (forward, backward, the reduction and AdamW).
void expect_no_alloc_in_training(const ModelConfig& c) {
  const int B = 2, T = 16;
  Model m(c, B, T, /*training=*/true, default_backend());
  m.init_weights(1);
  const auto comm = single_process_comm();
  ShardedAdamW opt(m.layout, default_backend(), *comm, /*accum=*/2);
  std::vector<int32_t> tok(size_t(B) * T), tgt(tok.size());
  for (size_t i = 0; i < tok.size(); ++i) {
    tok[i] = int32_t(i * 7 % 64);
    tgt[i] = int32_t(i * 5 % 64);
  }
  auto step = [&](int64_t t) {
    m.grads.zero();
    for (int round = 0; round < 2; ++round) {
      m.forward(tok.data(), tgt.data(), B, T, /*train=*/true, uint64_t(t * 2 + round));
      m.backward(0.5f);
      opt.reduce(m.grads, round);
    }
    opt.step(m.params, 1e-3f, t, 1.0f, AdamWConfig{});
    m.project_params();
  };
  step(1);  // the first step may make what is made once (thread pools, primitive caches)
  const Allocs a = count([&] {
    for (int64_t t = 2; t <= 5; ++t) step(t);
  });
  EXPECT_EQ(a.news, 0) << "operator new calls in 4 training steps";
  EXPECT_EQ(a.heap, 0) << "bytes the heap grew by in 4 training steps";
}

// Decoding tokens 2.. of a generation: with a sliding window of 8 (it slides 4 times over 40
// tokens) and with a full cache sized once for the generation.
void expect_no_alloc_in_decoding(const ModelConfig& c) {
  for (const int window : {0, 8}) {
    SCOPED_TRACE(window);
    Model m(c, 1, 4, /*training=*/false, default_backend());
    m.init_weights(2);
    GenerateOptions go;
    go.window = window;
    go.sampling.temperature = 0.9f;
    go.sampling.top_k = 10;
    Generator gen(m, go);
    int64_t n0 = 0, n1 = 0, tokens = 0;
    size_t h0 = 0, h1 = 0;
    // From the second sample to the last: the loop's own steps (feed, forward, sample).
    gen.generate({1, 2, 3}, 40, [&](int32_t, const float*) {
      if (++tokens == 2) {
        n0 = g_news.load();
        h0 = heap_in_use();
      }
      n1 = g_news.load();
      h1 = heap_in_use();
    });
    ASSERT_EQ(tokens, 40);
    EXPECT_EQ(n1 - n0, 0) << "operator new calls in 38 decode steps";
    EXPECT_EQ(int64_t(h1) - int64_t(h0), 0) << "heap growth in 38 decode steps";
  }
}

// Every method of the registry, as the cache tests iterate it: each one's score bias tables,
// parameters and their gradients are planned with the model.
class NoAllocInLoopMethods : public ::testing::TestWithParam<PosKind> {};

TEST_P(NoAllocInLoopMethods, TrainingSteps) {
  SKIP_UNDER_SANITIZER();
  expect_no_alloc_in_training(config(GetParam()));
}

TEST_P(NoAllocInLoopMethods, DecodeSteps) {
  SKIP_UNDER_SANITIZER();
  expect_no_alloc_in_decoding(config(GetParam()));
}

// The options that change what a method makes on the host per call: trainable slopes (from
// theta every forward), ALiBi's interpolation (slopes times L/L' for every longer context) and
// YaRN's scaled rotary tables, with L = 8 so that the 43 tokens decoded run past it.
TEST(NoAllocInLoop, MethodOptions) {
  SKIP_UNDER_SANITIZER();
  ModelConfig trainable = config(PosKind::alibi);
  trainable.slopes = Slopes::trainable;
  expect_no_alloc_in_training(trainable);
  expect_no_alloc_in_decoding(trainable);
  ModelConfig interpolated = config(PosKind::alibi);
  interpolated.alibi_interpolate = true;
  interpolated.train_len = 8;
  expect_no_alloc_in_decoding(interpolated);
  ModelConfig yarn = config(PosKind::rotary);
  yarn.rope_scaling = RopeScaling::yarn;
  yarn.rope_factor = 4.0f;
  yarn.train_len = 8;
  expect_no_alloc_in_decoding(yarn);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, NoAllocInLoopMethods, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

}  // namespace
}  // namespace alibi
