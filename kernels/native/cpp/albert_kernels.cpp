// Fused CPU kernels for the three places where libtorch 1.13's eager ops
// leave the most time on the table in an ALBERT training step (see
// kernels/kernels.go and bench/RESULTS.md for the measurements):
//
//   albert_gelu_tanh  the tanh-approximated GELU, forward and backward, with a
//                     rational tanh (Sleef's tanhf was ~8% of a tiny step);
//   albert_bmm        batched matmul for attention, one single-threaded GEMM
//                     per (batch, head) spread over the intra-op threads (libtorch
//                     without MKL loops over the batch calling a 2-thread GEMM
//                     on 128×64×128 blocks: ~60 GFLOP/s of a 220 ceiling), on
//                     AVX-512 CPUs an in-place 6×64 register-tile kernel;
//   albert_dropout    inverted dropout with model/dropout.go's counter-based
//                     mask, drawn and applied in one pass, saved as bytes (and
//                     albert_dropout_add, with the residual added in that pass);
//   albert_softmax_dropout  attention's scale, mask, softmax and dropout in one
//                     pass per row, and one for backward;
//   albert_lamb       one LAMB/AdamW update of one parameter in two passes over
//                     memory instead of ~15 tensor ops (which each make one);
//                     albert_lamb_foreach, the update of a list of parameters
//                     in ATen's multi-tensor ops, is for other devices (CUDA);
//   albert_linear     a dense layer whose weight gradient is summed over all
//                     its uses inside the GEMM (cross-layer sharing uses one
//                     layer L times; autograd makes L gradients and adds them).
//
// It also holds the precision switches gotch does not expose (train.precision):
// libtorch's bf16 autocast for the CPU or CUDA (thread-local) and TF32 for
// CUDA matmuls (process-wide), albert_autocast and albert_tf32.
//
// The C ABI takes and returns gotch's tensor handles (torch::Tensor*). Each
// function returns NULL, or an error message the caller frees with free().
// torchbuild compiles this file into libalbert_kernels.so next to libtch.so.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif
#include <ATen/record_function.h>
#include <immintrin.h>
#include <torch/csrc/autograd/custom_function.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <sstream>
#include <string>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// The elementwise loops are compiled three times, for AVX-512, AVX2+FMA and
// the baseline, and the best one the CPU supports is picked at first call
// (gcc's target_clones matches exact CPU models for "arch=", so it fell back
// to the scalar baseline on this Xeon). The _body functions hold the code.
#define ALBERT_INLINE inline __attribute__((always_inline))
#define ALBERT_AVX512 "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"

int cpu_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

#define ALBERT_MULTIVERSION(name, params, args)                                  \
  __attribute__((target(ALBERT_AVX512))) void name##_avx512 params { name##_body args; } \
  __attribute__((target("avx2,fma"))) void name##_avx2 params { name##_body args; }      \
  void name##_base params { name##_body args; }                                  \
  void name params {                                                             \
    static const int level = cpu_level();                                        \
    if (level == 2) return name##_avx512 args;                                   \
    if (level == 1) return name##_avx2 args;                                     \
    name##_base args;                                                            \
  }

// ---------------------------------------------------------------- GELU (tanh)

constexpr float kBeta = 0.7978845608028654f;  // √(2/π)
constexpr float kKappa = 0.044715f;

// fast_tanh is Eigen's float rational approximation (13/6), accurate to a few
// ulp; it vectorizes, where libm's and Sleef's tanhf are far slower.
ALBERT_INLINE float fast_tanh(float x) {
  const float c = 7.90531110763549805f;
  x = x < -c ? -c : (x > c ? c : x);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;
}

ALBERT_INLINE void gelu_fwd_body(const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float t = fast_tanh(kBeta * (v + kKappa * v * v * v));
    y[i] = 0.5f * v * (1.0f + t);
  }
}
ALBERT_MULTIVERSION(gelu_fwd, (const float* x, float* y, int64_t n), (x, y, n))

ALBERT_INLINE void gelu_bwd_body(const float* x, const float* g, float* dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float v2 = v * v;
    const float t = fast_tanh(kBeta * (v + kKappa * v2 * v));
    const float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kBeta * (1.0f + 3.0f * kKappa * v2);
    dx[i] = g[i] * d;
  }
}
ALBERT_MULTIVERSION(gelu_bwd, (const float* x, const float* g, float* dx, int64_t n), (x, g, dx, n))

constexpr int64_t kGrain = 1 << 14;  // elements per task at least

at::Tensor gelu_tanh_forward(const at::Tensor& x) {
  auto xc = x.contiguous();
  auto y = at::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, xc.numel(), kGrain, [&](int64_t lo, int64_t hi) { gelu_fwd(xp + lo, yp + lo, hi - lo); });
  return y;
}

at::Tensor gelu_tanh_backward(const at::Tensor& x, const at::Tensor& g) {
  auto xc = x.contiguous();
  auto gc = g.contiguous();
  auto dx = at::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  const float* gp = gc.data_ptr<float>();
  float* dp = dx.data_ptr<float>();
  at::parallel_for(0, xc.numel(), kGrain, [&](int64_t lo, int64_t hi) { gelu_bwd(xp + lo, gp + lo, dp + lo, hi - lo); });
  return dx;
}

struct GeluTanh : public torch::autograd::Function<GeluTanh> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return gelu_tanh_forward(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto x = ctx->get_saved_variables()[0];
    return {gelu_tanh_backward(x, grads[0])};
  }
};

// ------------------------------------------------------------ batched matmul

// sgemm_ is the Fortran BLAS entry point libtorch itself calls (OpenBLAS on
// Debian), looked up at first use: a libtorch with a private BLAS (a PyTorch
// wheel's MKL) exports none, and then the blocks go through at::mm_out.
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                          const int*, const float*, const int*, const float*, float*, const int*);

sgemm_fn find_sgemm() {
  static const sgemm_fn f = reinterpret_cast<sgemm_fn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return f;
}

// blas_operand describes a row-major [rows, cols] block with strides (s0, s1)
// as the transposed column-major operand BLAS sees: 'N' with ld = s0 when
// rows are contiguous, 'T' with ld = s1 when columns are; false otherwise.
bool blas_operand(int64_t rows, int64_t cols, int64_t s0, int64_t s1, char* trans, int* ld) {
  if (s1 == 1 && s0 >= std::max<int64_t>(1, cols)) {
    *trans = 'N', *ld = int(s0);
    return true;
  }
  if (s0 == 1 && s1 >= std::max<int64_t>(1, rows)) {
    *trans = 'T', *ld = int(s1);
    return true;
  }
  return false;
}

// small_gemm computes C = A·B for one attention block on one thread, where
// a single-threaded OpenBLAS call reached ~50-85 GFLOP/s on these 128×64
// and 128×128 operands (it packs both for so little work). Each 6×64 tile
// of C is 24 AVX-512 accumulators; per k the kernel loads one row of B
// (four vectors, unit stride in j: b[k·ldb + j]) and broadcasts six values
// of A from a[i·as0 + k·as1] in place, its rows (as1 = 1) or its columns
// (as0 = 1) being contiguous. C is written row-major with ldc. In a loop
// on one 128×64×128 block it reached ~105 GFLOP/s, sgemm_ ~85.
enum class ALayout { Rows, Cols };

template <int R, bool Full, ALayout L>
__attribute__((target("avx512f"))) ALBERT_INLINE void small_gemm_tile(int K, const float* a, int64_t as, const float* b,
                                                                      int64_t ldb, float* c, int64_t ldc,
                                                                      const __mmask16* m) {
  __m512 acc[R][4];
  const float* rp[R];  // L == Rows: row r of the strip
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    for (int q = 0; q < 4; q++) acc[r][q] = _mm512_setzero_ps();
    rp[r] = a + r * as;
  }
  for (int k = 0; k < K; k++) {
    const float* bk = b + k * ldb;
    __m512 bv[4];
    for (int q = 0; q < 4; q++) bv[q] = Full ? _mm512_loadu_ps(bk + 16 * q) : _mm512_maskz_loadu_ps(m[q], bk + 16 * q);
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(L == ALayout::Rows ? rp[r][k] : a[k * as + r]);
      for (int q = 0; q < 4; q++) acc[r][q] = _mm512_fmadd_ps(av, bv[q], acc[r][q]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; r++) {
    for (int q = 0; q < 4; q++) {
      if (Full) _mm512_storeu_ps(c + r * ldc + 16 * q, acc[r][q]);
      else _mm512_mask_storeu_ps(c + r * ldc + 16 * q, m[q], acc[r][q]);
    }
  }
}

template <int R, ALayout L>
__attribute__((target("avx512f"))) void small_gemm_strip(int N, int K, const float* a, int64_t as, const float* b,
                                                         int64_t ldb, float* c, int64_t ldc) {
  for (int j = 0; j < N; j += 64) {
    const int nj = std::min(64, N - j);
    if (nj == 64) {
      small_gemm_tile<R, true, L>(K, a, as, b + j, ldb, c + j, ldc, nullptr);
    } else {
      __mmask16 m[4];
      for (int q = 0; q < 4; q++) {
        const int left = std::clamp(nj - 16 * q, 0, 16);
        m[q] = left == 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      }
      small_gemm_tile<R, false, L>(K, a, as, b + j, ldb, c + j, ldc, m);
    }
  }
}

template <ALayout L>
__attribute__((target("avx512f"))) void small_gemm_rows(int M, int N, int K, const float* a, int64_t as0, int64_t as1,
                                                        const float* b, int64_t ldb, float* c, int64_t ldc) {
  const int64_t as = L == ALayout::Rows ? as0 : as1;  // between consecutive k (Cols) or rows (Rows)
  for (int i = 0; i < M; i += 6) {
    const float* ai = a + i * as0;
    float* ci = c + i * ldc;
    switch (std::min(6, M - i)) {
      case 6: small_gemm_strip<6, L>(N, K, ai, as, b, ldb, ci, ldc); break;
      case 5: small_gemm_strip<5, L>(N, K, ai, as, b, ldb, ci, ldc); break;
      case 4: small_gemm_strip<4, L>(N, K, ai, as, b, ldb, ci, ldc); break;
      case 3: small_gemm_strip<3, L>(N, K, ai, as, b, ldb, ci, ldc); break;
      case 2: small_gemm_strip<2, L>(N, K, ai, as, b, ldb, ci, ldc); break;
      default: small_gemm_strip<1, L>(N, K, ai, as, b, ldb, ci, ldc); break;
    }
  }
}

// small_gemm needs A's rows (as1 = 1) or columns (as0 = 1) contiguous.
void small_gemm(int M, int N, int K, const float* a, int64_t as0, int64_t as1, const float* b, int64_t ldb, float* c,
                int64_t ldc) {
  if (as1 == 1) small_gemm_rows<ALayout::Rows>(M, N, K, a, as0, as1, b, ldb, c, ldc);
  else small_gemm_rows<ALayout::Cols>(M, N, K, a, as0, as1, b, ldb, c, ldc);
}

// use_small_gemm says whether small_gemm runs here (an AVX-512 CPU, and not
// turned off by ALBERT_SMALL_GEMM=off, for A/B timings against sgemm_).
bool use_small_gemm() {
  static const bool on = [] {
    const char* v = std::getenv("ALBERT_SMALL_GEMM");
    return cpu_level() == 2 && !(v && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0));
  }();
  return on;
}

// block_offset is the offset of block i of a 3-D or 4-D batched operand:
// leading index i, or (i / inner, i % inner) with inner heads.
int64_t block_offset(const at::Tensor& t, int64_t i, int64_t inner) {
  return t.dim() == 4 ? (i / inner) * t.stride(0) + (i % inner) * t.stride(1) : i * t.stride(0);
}

// bmm_small runs bmm_into's blocks through small_gemm. B blocks whose rows
// are not contiguous (kᵀ in q·kᵀ, vᵀ in backward) are first copied
// transposed into a per-thread buffer, which costs K·N copies against
// M·N·K multiply-adds.
void bmm_small(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, int64_t inner) {
  const int64_t n = a.size(0) * inner;
  const int M = int(a.size(-2)), K = int(a.size(-1)), N = int(b.size(-1));
  auto offset = [inner](const at::Tensor& t, int64_t i) { return block_offset(t, i, inner); };
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t as0 = a.stride(-2), as1 = a.stride(-1), bs0 = b.stride(-2), bs1 = b.stride(-1), ldc = out.stride(-2);
  const bool pack = bs1 != 1;
  at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> buf(pack ? size_t(K) * N : 0);
    for (int64_t i = lo; i < hi; i++) {
      const float* bi = bp + offset(b, i);
      int64_t ldb = bs0;
      if (pack) {
        for (int j = 0; j < N; j++)
          for (int k = 0; k < K; k++) buf[size_t(k) * N + j] = bi[k * bs0 + j * bs1];
        bi = buf.data();
        ldb = N;
      }
      small_gemm(M, N, K, ap + offset(a, i), as0, as1, bi, ldb, op + offset(out, i), ldc);
    }
  });
}

// bmm_into computes out[i] = a[i] @ b[i] for every batch index i of 3-D or
// 4-D operands with the same leading dimensions, any strides, into out,
// whose blocks are row-major or column-major (any leading strides). Each
// block is one GEMM on one thread: inside an OpenMP parallel region
// OpenBLAS runs single-threaded, so the threads split the batch instead of
// each block. Float blocks of up to 1024 on a side go through small_gemm on
// AVX-512 CPUs (ALBERT_SMALL_GEMM=off: not), else call sgemm_ directly
// (row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ): going through at::mm_out
// cost three tensor views and a dispatch per block, thousands per step.
void bmm_into(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  if (out.stride(-1) != 1 && out.stride(-2) == 1) {  // column-major blocks: Cᵀ = Bᵀ·Aᵀ, row-major
    auto outT = out.transpose(-1, -2);
    bmm_into(b.transpose(-1, -2), a.transpose(-1, -2), outT);
    return;
  }
  const int64_t inner = a.dim() == 4 ? a.size(1) : 1;
  const int64_t n = a.size(0) * inner;
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    out.zero_();
    return;
  }
  char ta, tb;
  int lda, ldb;
  if (a.scalar_type() == at::kFloat && out.stride(-1) == 1 && M <= 1024 && N <= 1024 && K <= 1024 &&
      (a.stride(-1) == 1 || a.stride(-2) == 1) && (b.stride(-1) == 1 || b.stride(-2) == 1) && use_small_gemm()) {
    bmm_small(a, b, out, inner);
    return;
  }
  auto offset = [inner](const at::Tensor& t, int64_t i) { return block_offset(t, i, inner); };
  const sgemm_fn sgemm = a.scalar_type() == at::kFloat ? find_sgemm() : nullptr;
  if (sgemm != nullptr && out.stride(-1) == 1 && blas_operand(M, K, a.stride(-2), a.stride(-1), &ta, &lda) &&
      blas_operand(K, N, b.stride(-2), b.stride(-1), &tb, &ldb)) {
    const float* ap = a.data_ptr<float>();
    const float* bp = b.data_ptr<float>();
    float* op = out.data_ptr<float>();
    const int m = int(M), k = int(K), nn = int(N), ldc = int(out.stride(-2));
    const float one = 1, zero = 0;
    at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        sgemm(&tb, &ta, &nn, &m, &k, &one, bp + offset(b, i), &ldb, ap + offset(a, i), &lda, &zero, op + offset(out, i), &ldc);
      }
    });
    return;
  }
  auto block = [inner](const at::Tensor& t, int64_t i) {
    return t.dim() == 4 ? t.select(0, i / inner).select(0, i % inner) : t.select(0, i);
  };
  at::parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    at::NoGradGuard no_grad;  // OpenMP workers start with grad mode on
    for (int64_t i = lo; i < hi; i++) {
      auto o = block(out, i);
      at::mm_out(o, block(a, i), block(b, i));
    }
  });
}

// bmm_parallel returns a @ b (see bmm_into), laid out like `like` when that
// has the product's shape and a dense layout, else contiguous. Attention
// passes the operand whose layout the result should share: the context
// probs·v comes out in v's [B,S,nh,d] order, so merging the heads back is a
// view, not a copy, and each gradient comes out in its input's layout, so
// the head split's backward is a view too.
at::Tensor bmm_parallel(const at::Tensor& a, const at::Tensor& b, const at::Tensor& like) {
  TORCH_CHECK(a.dim() == b.dim() && (a.dim() == 3 || a.dim() == 4), "albert_bmm: want two 3-D or 4-D tensors, got ", a.sizes(), " and ", b.sizes());
  TORCH_CHECK(a.size(-1) == b.size(-2), "albert_bmm: inner sizes differ: ", a.sizes(), " @ ", b.sizes());
  for (int64_t d = 0; d < a.dim() - 2; d++) {
    TORCH_CHECK(a.size(d) == b.size(d), "albert_bmm: batch sizes differ: ", a.sizes(), " @ ", b.sizes());
  }
  std::vector<int64_t> shape(a.sizes().begin(), a.sizes().end());
  shape.back() = b.size(-1);
  at::Tensor out = like.defined() && like.sizes().vec() == shape && like.is_non_overlapping_and_dense()
                       ? at::empty_strided(shape, like.strides(), a.options())
                       : at::empty(shape, a.options());
  bmm_into(a, b, out);
  return out;
}

struct BMM : public torch::autograd::Function<BMM> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    return bmm_parallel(a.detach(), b.detach(), b);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto a = saved[0].detach(), b = saved[1].detach();
    auto g = grads[0].detach();
    at::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = bmm_parallel(g, b.transpose(-1, -2), a);
    if (ctx->needs_input_grad(1)) gb = bmm_parallel(a.transpose(-1, -2), g, b);
    return {ga, gb};
  }
};

// ------------------------------------------------------------------- dropout

// The keep mask is the one model/dropout.go's fillKeepMask draws, bit for
// bit: pair j of elements (2j, 2j+1) takes the low and high 32 bits of
// SplitMix64 output j of the stream keyed by key, and an element is kept
// when its 32 bits are ≥ thresh = round(p·2³²). Kept elements are scaled by
// float(1/(1-p)). The mask is saved as one byte per element for backward
// (the composed version saved a float32 mask).
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

ALBERT_INLINE uint64_t splitmix(uint64_t x) {
  x += kGolden;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// dropout_mask_body handles elements [lo, hi). Element i takes half i&1 of
// output i>>1 (each output is hashed twice, which keeps the loop free of
// control flow so it vectorizes). y = x·m (+ res when Add) with m = scale
// or 0, as x·mask.
template <bool Add>
ALBERT_INLINE void dropout_mask_body(const float* x, const float* res, float* y, uint8_t* keep, int64_t lo, int64_t hi,
                                     uint64_t key, uint32_t thresh, float scale) {
#pragma omp simd
  for (int64_t i = lo; i < hi; i++) {
    const uint64_t r = splitmix(key + uint64_t(i >> 1) * kGolden);
    const uint32_t u = (i & 1) ? uint32_t(r >> 32) : uint32_t(r);
    const bool k = u >= thresh;
    keep[i] = k;
    if constexpr (Add) {
      y[i] = x[i] * (k ? scale : 0.0f) + res[i];
    } else {
      y[i] = x[i] * (k ? scale : 0.0f);
    }
  }
}
ALBERT_INLINE void dropout_fwd_body(const float* x, float* y, uint8_t* keep, int64_t lo, int64_t hi, uint64_t key,
                                    uint32_t thresh, float scale) {
  dropout_mask_body<false>(x, nullptr, y, keep, lo, hi, key, thresh, scale);
}
ALBERT_MULTIVERSION(dropout_fwd, (const float* x, float* y, uint8_t* keep, int64_t lo, int64_t hi, uint64_t key, uint32_t thresh, float scale), (x, y, keep, lo, hi, key, thresh, scale))

ALBERT_INLINE void dropout_bwd_body(const float* g, const uint8_t* keep, float* dx, int64_t n, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] = g[i] * (keep[i] ? scale : 0.0f);
}
ALBERT_MULTIVERSION(dropout_bwd, (const float* g, const uint8_t* keep, float* dx, int64_t n, float scale), (g, keep, dx, n, scale))

// dropout_add_fwd_body is dropout_fwd_body plus a residual: y = x·m + res.
ALBERT_INLINE void dropout_add_fwd_body(const float* x, const float* res, float* y, uint8_t* keep, int64_t lo, int64_t hi,
                                        uint64_t key, uint32_t thresh, float scale) {
  dropout_mask_body<true>(x, res, y, keep, lo, hi, key, thresh, scale);
}
ALBERT_MULTIVERSION(dropout_add_fwd, (const float* x, const float* res, float* y, uint8_t* keep, int64_t lo, int64_t hi, uint64_t key, uint32_t thresh, float scale), (x, res, y, keep, lo, hi, key, thresh, scale))

// dropout_apply returns y = dropout(x) (+ res when res is not null) and the
// keep mask (one byte per element).
std::pair<at::Tensor, at::Tensor> dropout_apply(const at::Tensor& x, const at::Tensor* res, double p, int64_t key) {
  auto xc = x.contiguous();
  auto y = at::empty_like(xc);
  auto keep = at::empty(xc.sizes(), xc.options().dtype(at::kByte));
  const int64_t n = xc.numel();
  const auto thresh = uint32_t(std::nearbyint(p * 4294967296.0));
  const float scale = float(1 / (1 - p));
  const float* xp = xc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  uint8_t* kp = keep.data_ptr<uint8_t>();
  if (res != nullptr) {
    auto rc = res->contiguous();
    TORCH_CHECK(rc.sizes() == xc.sizes(), "albert_dropout_add: residual ", rc.sizes(), ", input ", xc.sizes());
    const float* rp = rc.data_ptr<float>();
    at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) { dropout_add_fwd(xp, rp, yp, kp, lo, hi, uint64_t(key), thresh, scale); });
  } else {
    at::parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) { dropout_fwd(xp, yp, kp, lo, hi, uint64_t(key), thresh, scale); });
  }
  return {y, keep};
}

// dropout_grad is the gradient of dropout for upstream g: g·m.
at::Tensor dropout_grad(const at::Tensor& g0, const at::Tensor& keep, float scale) {
  auto g = g0.contiguous();
  auto dx = at::empty_like(g);
  const float* gp = g.data_ptr<float>();
  const uint8_t* kp = keep.data_ptr<uint8_t>();
  float* dp = dx.data_ptr<float>();
  at::parallel_for(0, g.numel(), kGrain, [&](int64_t lo, int64_t hi) { dropout_bwd(gp + lo, kp + lo, dp + lo, hi - lo, scale); });
  return dx;
}

struct Dropout : public torch::autograd::Function<Dropout> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double p, int64_t key) {
    auto [y, keep] = dropout_apply(x, nullptr, p, key);
    ctx->save_for_backward({keep});
    ctx->saved_data["scale"] = double(float(1 / (1 - p)));
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const float scale = float(ctx->saved_data["scale"].toDouble());
    return {dropout_grad(grads[0], ctx->get_saved_variables()[0], scale), at::Tensor(), at::Tensor()};
  }
};

// DropoutAdd is dropout(x) + res: a sublayer's output joining the residual
// stream, in the same pass.
struct DropoutAdd : public torch::autograd::Function<DropoutAdd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& res, double p, int64_t key) {
    auto [y, keep] = dropout_apply(x, &res, p, key);
    ctx->save_for_backward({keep});
    ctx->saved_data["scale"] = double(float(1 / (1 - p)));
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const float scale = float(ctx->saved_data["scale"].toDouble());
    return {dropout_grad(grads[0], ctx->get_saved_variables()[0], scale), grads[0], at::Tensor(), at::Tensor()};
  }
};

// --------------------------------------------------- attention softmax+dropout

// vexp is Cephes' expf as in Eigen's pexp (a degree-5 polynomial after
// range reduction, ~1 ulp) on 8 floats; 0 below -87.3, where expf would only
// give denormals. Softmax arguments are ≤ 0 after the max is taken. It is
// written with GCC vector types: the auto-vectorizer left a scalar version
// of this loop scalar (it called floorf per element).
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

ALBERT_INLINE v8f vexp(v8f x) {
  const v8f lo = v8f{} - 87.33654f, hi = v8f{} + 88.3762626f, zero = v8f{}, one = v8f{} + 1.0f;
  const v8i under = x < lo;
  x = under ? lo : x;
  x = x > hi ? hi : x;
  const v8f t = x * 1.44269504088896341f + 0.5f;
  const v8f ti = __builtin_convertvector(__builtin_convertvector(t, v8i), v8f);
  const v8f fx = ti - (ti > t ? one : zero);
  x = x - fx * 0.693359375f - fx * -2.12194440e-4f;
  const v8f z = x * x;
  v8f y = zero + 1.9875691500E-4f;
  y = y * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * z + x + 1.0f;
  const v8i bits = (__builtin_convertvector(fx, v8i) + 127) << 23;
  const v8f r = y * reinterpret_cast<const v8f&>(bits);
  return under ? zero : r;
}

// exp_sum_inplace sets x[j] = exp(x[j] - mx) and returns their sum; a tail
// of fewer than 8 goes through vexp in a partly filled vector.
ALBERT_INLINE float exp_sum_inplace(float* x, int64_t n, float mx) {
  v8f acc = v8f{};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    std::memcpy(&v, x + j, sizeof v);
    v = vexp(v - mx);
    std::memcpy(x + j, &v, sizeof v);
    acc += v;
  }
  if (j < n) {  // the tail, in a partly filled vector
    const int64_t len = n - j;
    v8f v = v8f{};
    std::memcpy(&v, x + j, len * sizeof(float));
    v = vexp(v - mx);
    for (int64_t k = len; k < 8; k++) v[k] = 0;  // padding lanes add nothing
    std::memcpy(x + j, &v, len * sizeof(float));
    acc += v;
  }
  float sum = 0;
  for (int k = 0; k < 8; k++) sum += acc[k];
  return sum;
}

// softmax_dropout_fwd_body handles rows [lo, hi) of length S: p = softmax(scale·s
// + mask[b]) with b = row / rowsPerBatch, then y = p·m with the dropout mask
// m (scale or 0) of element index row·S + j, as albert_dropout draws it.
ALBERT_INLINE void softmax_dropout_fwd_body(const float* sc, const float* mask, float* p, float* y, uint8_t* keep,
                                        int64_t lo, int64_t hi, int64_t S, int64_t rowsPerBatch, float scale,
                                        uint64_t key, uint32_t thresh, float kscale) {
  for (int64_t r = lo; r < hi; r++) {
    const float* s = sc + r * S;
    const float* m = mask + (r / rowsPerBatch) * S;
    float* pr = p + r * S;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < S; j++) {
      const float x = scale * s[j] + m[j];
      pr[j] = x;
      mx = x > mx ? x : mx;
    }
    const float sum = exp_sum_inplace(pr, S, mx);
    const float inv = 1.0f / sum;
    float* yr = y + r * S;
    uint8_t* kr = keep + r * S;
    const int64_t base = r * S;
#pragma omp simd
    for (int64_t j = 0; j < S; j++) {
      const int64_t i = base + j;
      const uint64_t bits = splitmix(key + uint64_t(i >> 1) * kGolden);
      const uint32_t u = (i & 1) ? uint32_t(bits >> 32) : uint32_t(bits);
      const bool k = u >= thresh;
      const float pj = pr[j] * inv;
      pr[j] = pj;
      kr[j] = k;
      yr[j] = pj * (k ? kscale : 0.0f);
    }
  }
}
ALBERT_MULTIVERSION(softmax_dropout_fwd, (const float* sc, const float* mask, float* p, float* y, uint8_t* keep, int64_t lo, int64_t hi, int64_t S, int64_t rowsPerBatch, float scale, uint64_t key, uint32_t thresh, float kscale), (sc, mask, p, y, keep, lo, hi, S, rowsPerBatch, scale, key, thresh, kscale))

// Backward of y = dropout(softmax(scale·s + mask)): gp = g·m,
// gs = scale·p·(gp − Σ gp·p).
ALBERT_INLINE void softmax_dropout_bwd_body(const float* g, const float* p, const uint8_t* keep, float* gs, int64_t lo,
                                            int64_t hi, int64_t S, float scale, float kscale) {
  for (int64_t r = lo; r < hi; r++) {
    const float* gr = g + r * S;
    const float* pr = p + r * S;
    const uint8_t* kr = keep + r * S;
    float* out = gs + r * S;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < S; j++) dot += gr[j] * (kr[j] ? kscale : 0.0f) * pr[j];
#pragma omp simd
    for (int64_t j = 0; j < S; j++) out[j] = scale * pr[j] * (gr[j] * (kr[j] ? kscale : 0.0f) - dot);
  }
}
ALBERT_MULTIVERSION(softmax_dropout_bwd, (const float* g, const float* p, const uint8_t* keep, float* gs, int64_t lo, int64_t hi, int64_t S, float scale, float kscale), (g, p, keep, gs, lo, hi, S, scale, kscale))

struct SoftmaxDropout : public torch::autograd::Function<SoftmaxDropout> {
  // scores [B, nh, S, S]; mask additive, B·S elements ([B,1,1,S]).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& scores, const at::Tensor& mask, double scale,
                            double pdrop, int64_t key) {
    auto sc = scores.contiguous();
    auto mk = mask.contiguous();
    const int64_t S = sc.size(-1), rows = sc.numel() / S, B = sc.size(0);
    TORCH_CHECK(mk.numel() == B * S, "albert_softmax_dropout: mask has ", mk.numel(), " elements, want ", B, "×", S);
    auto p = at::empty_like(sc);
    auto y = at::empty_like(sc);
    auto keep = at::empty(sc.sizes(), sc.options().dtype(at::kByte));
    const auto thresh = uint32_t(std::nearbyint(pdrop * 4294967296.0));
    const float kscale = float(1 / (1 - pdrop));
    const float* sp = sc.data_ptr<float>();
    const float* mp = mk.data_ptr<float>();
    float* pp = p.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    uint8_t* kp = keep.data_ptr<uint8_t>();
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / S), [&](int64_t lo, int64_t hi) {
      softmax_dropout_fwd(sp, mp, pp, yp, kp, lo, hi, S, rows / B, float(scale), uint64_t(key), thresh, kscale);
    });
    ctx->save_for_backward({p, keep});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["kscale"] = double(kscale);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto p = saved[0], keep = saved[1];
    const float scale = float(ctx->saved_data["scale"].toDouble());
    const float kscale = float(ctx->saved_data["kscale"].toDouble());
    auto g = grads[0].contiguous();
    auto gs = at::empty_like(p);
    const int64_t S = p.size(-1), rows = p.numel() / S;
    const float* gp = g.data_ptr<float>();
    const float* pp = p.data_ptr<float>();
    const uint8_t* kp = keep.data_ptr<uint8_t>();
    float* op = gs.data_ptr<float>();
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / S), [&](int64_t lo, int64_t hi) {
      softmax_dropout_bwd(gp, pp, kp, op, lo, hi, S, scale, kscale);
    });
    return {gs, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ---------------------------------------------------------------------- LAMB

constexpr int64_t kChunk = 1 << 15;  // fixed, so the norms do not depend on the thread count

struct LambArgs {
  float c1, c2, eps, wd, gscale;
  float mc, vc;  // bias correction 1/(1-β1^t), 1/(1-β2^t); 1 without it (the official code)
  bool decay;
};

// lamb_moments updates m and v in place and returns Σw² and Σu² over the
// range, u = m̂/(√v̂+ε) + wd·w with m̂ = mc·m, v̂ = vc·v.
ALBERT_INLINE void lamb_moments_body(const float* g, float* m, float* v, const float* w, int64_t n, LambArgs a, double* wsq, double* usq) {
  double ws = 0, us = 0;
#pragma omp simd reduction(+ : ws, us)
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * a.gscale;
    const float mi = m[i] + a.c1 * (gi - m[i]);  // m.lerp_(g, 1-β1)
    const float vi = v[i] + a.c2 * (gi * gi - v[i]);
    m[i] = mi;
    v[i] = vi;
    const float u = a.mc * mi / (std::sqrt(a.vc * vi) + a.eps) + (a.decay ? a.wd * w[i] : 0.0f);
    ws += double(w[i]) * w[i];
    us += double(u) * u;
  }
  *wsq = ws;
  *usq = us;
}
ALBERT_MULTIVERSION(lamb_moments, (const float* g, float* m, float* v, const float* w, int64_t n, LambArgs a, double* wsq, double* usq), (g, m, v, w, n, a, wsq, usq))

ALBERT_INLINE void lamb_apply_body(const float* m, const float* v, float* w, int64_t n, LambArgs a, float scale) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float u = a.mc * m[i] / (std::sqrt(a.vc * v[i]) + a.eps) + (a.decay ? a.wd * w[i] : 0.0f);
    w[i] += scale * u;
  }
}
ALBERT_MULTIVERSION(lamb_apply, (const float* m, const float* v, float* w, int64_t n, LambArgs a, float scale), (m, v, w, n, a, scale))

void check_lamb_operand(const at::Tensor& t, const at::Tensor& w, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "albert_lamb: ", name, " must be a CPU float tensor");
  TORCH_CHECK(t.is_contiguous(), "albert_lamb: ", name, " must be contiguous");
  TORCH_CHECK(t.sizes() == w.sizes(), "albert_lamb: ", name, " has shape ", t.sizes(), ", parameter ", w.sizes());
}

void lamb(at::Tensor& w, const at::Tensor& g0, at::Tensor& m, at::Tensor& v, const at::Tensor* gscale, double lr,
          double beta1, double beta2, double eps, double wd, double mc, double vc, bool trust) {
  at::Tensor g = g0.contiguous();
  check_lamb_operand(w, w, "the parameter");
  check_lamb_operand(g, w, "the gradient");
  check_lamb_operand(m, w, "m");
  check_lamb_operand(v, w, "v");
  LambArgs a{float(1 - beta1), float(1 - beta2), float(eps), float(wd), 1.0f, float(mc), float(vc), wd != 0};
  if (gscale != nullptr) a.gscale = gscale->item<float>();
  const int64_t n = w.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> wsq(chunks), usq(chunks);
  float* wp = w.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  at::parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      const int64_t off = c * kChunk, len = std::min(kChunk, n - off);
      lamb_moments(gp + off, mp + off, vp + off, wp + off, len, a, &wsq[c], &usq[c]);
    }
  });
  double ratio = 1;
  if (trust) {
    double ws = 0, us = 0;
    for (int64_t c = 0; c < chunks; c++) {
      ws += wsq[c];
      us += usq[c];
    }
    if (ws > 0 && us > 0) ratio = std::sqrt(ws) / std::sqrt(us);
  }
  const float scale = float(-lr * ratio);
  at::parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++) {
      const int64_t off = c * kChunk, len = std::min(kChunk, n - off);
      lamb_apply(mp + off, vp + off, wp + off, len, a, scale);
    }
  });
}

// ------------------------------------------------------ multi-tensor LAMB

// flat_views splits flat (1-D, contiguous) into views shaped like ts, in
// order. Views of one buffer are contiguous, so CUDA's multi-tensor kernels
// take them with the tensors they pair with, many tensors a launch.
std::vector<at::Tensor> flat_views(const at::Tensor& flat, at::TensorList ts) {
  std::vector<at::Tensor> out;
  out.reserve(ts.size());
  int64_t off = 0;
  for (const auto& t : ts) {
    out.push_back(flat.narrow(0, off, t.numel()).view(t.sizes()));
    off += t.numel();
  }
  return out;
}

#ifndef ALBERT_NO_FOREACH  // torchbuild retries without it if it does not compile
// lamb_foreach is lamb over a list of parameters that share the weight decay
// wd and the trust-ratio setting, in ATen's multi-tensor (_foreach_) ops on
// whatever device the tensors are on: about ten calls for the list, where
// the composed ops take 7-15 per parameter. Nothing is read back to the host
// (the clipping factor and the trust ratios stay tensors on the device). It
// computes, as train.Optimizer's composed ops do up to float rounding:
//
//   g ← g·gscale                 (into one buffer: a cat and a mul)
//   m ← β1·m + (1-β1)·g          (_foreach_mul_, _foreach_add_)
//   v ← β2·v + (1-β2)·g²         (_foreach_mul_, _foreach_addcmul_)
//   den = √(vc·v) + ε            (_foreach_mul, _foreach_sqrt_, _foreach_add_)
//   u = wd·w + mc·m/den          (_foreach_mul, _foreach_addcdiv_; no decay: _foreach_div)
//   r = ‖w‖/‖u‖, 1 where either is 0   (two _foreach_norm, then [n]-vector ops)
//   w ← w - lr·r·u               (_foreach_addcmul_; _foreach_add_ without r)
//
// Temporaries: at most two parameter-sized sets alive at once. The last
// _foreach_addcmul_ pairs each u with a one-element r, which the CUDA
// multi-tensor kernels do not take: libtorch runs it as one addcmul_ per
// parameter with the trust ratio (the matrices).
void lamb_foreach(at::TensorList w, at::TensorList g, at::TensorList m, at::TensorList v, const at::Tensor* gscale,
                  double lr, double beta1, double beta2, double eps, double wd, double mc, double vc, bool trust) {
  const size_t n = w.size();
  TORCH_CHECK(g.size() == n && m.size() == n && v.size() == n, "albert_lamb_foreach: ", n, " parameters but ", g.size(),
              " gradients, ", m.size(), " m and ", v.size(), " v");
  if (n == 0) return;
  const auto dev = w[0].device();
  const auto dtype = w[0].scalar_type();
  TORCH_CHECK(c10::isFloatingType(dtype), "albert_lamb_foreach: parameters of type ", dtype);
  const auto check = [&](const at::Tensor& t, size_t i, const char* name) {
    TORCH_CHECK(t.defined(), "albert_lamb_foreach: ", name, " ", i, " is undefined");
    TORCH_CHECK(t.device() == dev && t.scalar_type() == dtype, "albert_lamb_foreach: ", name, " ", i, " is ", t.scalar_type(),
                " on ", t.device(), ", parameter 0 ", dtype, " on ", dev);
    TORCH_CHECK(t.sizes() == w[i].sizes(), "albert_lamb_foreach: ", name, " ", i, " has shape ", t.sizes(), ", its parameter ",
                w[i].sizes());
  };
  for (size_t i = 0; i < n; i++) {
    check(w[i], i, "parameter");
    check(g[i], i, "gradient");
    check(m[i], i, "m");
    check(v[i], i, "v");
  }
  TORCH_CHECK(gscale == nullptr || (gscale->defined() && gscale->numel() == 1), "albert_lamb_foreach: gscale must have one element");

  // g·gscale into one buffer: one cat (batched on CUDA for contiguous
  // gradients) and one mul, where a list times a one-element tensor would
  // be one launch per gradient.
  std::vector<at::Tensor> gs;
  at::TensorList gl = g;
  if (gscale != nullptr) {
    std::vector<at::Tensor> flat;
    flat.reserve(n);
    for (const auto& t : g) flat.push_back(t.reshape({-1}));
    at::Tensor buf = at::cat(flat);
    flat.clear();
    buf.mul_(*gscale);
    gs = flat_views(buf, w);
    gl = at::TensorList(gs);
  }
  at::_foreach_mul_(m, at::Scalar(beta1));
  at::_foreach_add_(m, gl, at::Scalar(1 - beta1));
  at::_foreach_mul_(v, at::Scalar(beta2));
  at::_foreach_addcmul_(v, gl, gl, at::Scalar(1 - beta2));
  gs.clear();  // frees the scaled gradients

  std::vector<at::Tensor> den;
  if (vc != 1) {
    den = at::_foreach_mul(v, at::Scalar(vc));
    at::_foreach_sqrt_(den);
  } else {
    den = at::_foreach_sqrt(v);
  }
  at::_foreach_add_(den, at::Scalar(eps));

  std::vector<at::Tensor> u;
  if (wd != 0) {
    u = at::_foreach_mul(w, at::Scalar(wd));
    at::_foreach_addcdiv_(u, m, den, at::Scalar(mc));
  } else if (mc != 1) {
    u = at::_foreach_mul(m, at::Scalar(mc));
    at::_foreach_div_(u, den);
  } else {
    u = at::_foreach_div(m, den);
  }
  den.clear();

  if (!trust) {
    at::_foreach_add_(w, u, at::Scalar(-lr));
    return;
  }
  const at::Tensor wn = at::stack(at::_foreach_norm(w));
  const at::Tensor un = at::stack(at::_foreach_norm(u));
  const at::Tensor r = at::where(at::minimum(wn, un) > 0, wn / un, at::ones_like(wn));
  const std::vector<at::Tensor> scale = r.mul(at::Scalar(-lr)).unbind(0);
  at::_foreach_addcmul_(w, u, scale, at::Scalar(1));
}
#endif  // ALBERT_NO_FOREACH

// ------------------------------------------------------------ column sums

// colsum_band_body sets acc[j] = Σ over rows [lo, hi) of g[r·N + j].
ALBERT_INLINE void colsum_band_body(const float* g, float* acc, int64_t lo, int64_t hi, int64_t N) {
  std::memcpy(acc, g + lo * N, N * sizeof(float));
  for (int64_t r = lo + 1; r < hi; r++) {
    const float* gr = g + r * N;
#pragma omp simd
    for (int64_t j = 0; j < N; j++) acc[j] += gr[j];
  }
}
ALBERT_MULTIVERSION(colsum_band, (const float* g, float* acc, int64_t lo, int64_t hi, int64_t N), (g, acc, lo, hi, N))

// colsum_add_body sets out[j] = Σ over bands b of part[b·N + j], j in [lo, hi).
ALBERT_INLINE void colsum_add_body(const float* part, float* out, int64_t bands, int64_t N, int64_t lo, int64_t hi) {
  for (int64_t j = lo; j < hi; j++) out[j] = part[j];
  for (int64_t b = 1; b < bands; b++) {
    const float* pb = part + b * N;
#pragma omp simd
    for (int64_t j = lo; j < hi; j++) out[j] += pb[j];
  }
}
ALBERT_MULTIVERSION(colsum_add, (const float* part, float* out, int64_t bands, int64_t N, int64_t lo, int64_t hi), (part, out, bands, N, lo, hi))

// colsum returns the column sums of g [T, N] (a dense layer's bias
// gradient): bands of 64 rows are summed in parallel, then the bands in
// order, so the result does not depend on the thread count. ATen's sum over
// dim 0 took ~35 ms of base-all's step for ~340 MB of gradients.
at::Tensor colsum(const at::Tensor& g0) {
  auto g = g0.contiguous();
  const int64_t T = g.size(0), N = g.size(1);
  auto out = at::empty({N}, g.options());
  if (T == 0) return out.zero_();
  constexpr int64_t kBand = 64;
  const int64_t bands = (T + kBand - 1) / kBand;
  auto part = at::empty({bands, N}, g.options());
  const float* gp = g.data_ptr<float>();
  float* pp = part.data_ptr<float>();
  at::parallel_for(0, bands, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b++) colsum_band(gp, pp + b * N, b * kBand, std::min(T, (b + 1) * kBand), N);
  });
  float* op = out.data_ptr<float>();
  at::parallel_for(0, N, 1024, [&](int64_t lo, int64_t hi) { colsum_add(pp, op, bands, N, lo, hi); });
  return out;
}

// --------------------------------------------------------------- global norm

// sumsq_body returns Σx² over n floats, accumulated in double.
ALBERT_INLINE double sumsq_body(const float* x, int64_t n) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; i++) acc += double(x[i]) * double(x[i]);
  return acc;
}
__attribute__((target(ALBERT_AVX512))) double sumsq_avx512(const float* x, int64_t n) { return sumsq_body(x, n); }
__attribute__((target("avx2,fma"))) double sumsq_avx2(const float* x, int64_t n) { return sumsq_body(x, n); }
double sumsq_base(const float* x, int64_t n) { return sumsq_body(x, n); }
double sumsq(const float* x, int64_t n) {
  static const int level = cpu_level();
  return level == 2 ? sumsq_avx512(x, n) : level == 1 ? sumsq_avx2(x, n) : sumsq_base(x, n);
}

// global_norm is √(Σ over the tensors of Σx²): one parallel pass over all of
// them in fixed chunks (so the result does not depend on the thread count),
// where norm-per-tensor-then-norm-of-norms is two ops per tensor.
double global_norm(const std::vector<at::Tensor>& ts) {
  struct Piece {
    const float* p;
    int64_t n;
  };
  std::vector<at::Tensor> held;  // contiguous copies of strided tensors
  std::vector<Piece> pieces;
  for (const auto& t : ts) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "albert_global_norm: want CPU float tensors");
    const at::Tensor& c = t.is_contiguous() ? t : held.emplace_back(t.contiguous());
    const float* p = c.data_ptr<float>();
    for (int64_t off = 0; off < c.numel(); off += kChunk) pieces.push_back({p + off, std::min(kChunk, c.numel() - off)});
  }
  std::vector<double> part(pieces.size());
  at::parallel_for(0, int64_t(pieces.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) part[i] = sumsq(pieces[i].p, pieces[i].n);
  });
  double total = 0;
  for (double x : part) total += x;
  return std::sqrt(total);
}

// -------------------------------------------------------------------- linear

// GradSum collects the weight and bias gradients of one dense layer over its
// uses in one forward pass (and, the same way, the gradient of an input that
// several dense layers read: attention's query, key and value projections). With ALBERT's cross-layer sharing the same layer
// runs in all L layers; autograd would give each use's backward a fresh
// gradient (which BLAS first zeroes) and then add the L of them one by one:
// ~3 passes over the weight per use. Here the first use's backward to run
// writes the product, the others add theirs inside the GEMM (beta = 1), and
// whichever runs last returns the sum; the rest return no gradient, which
// autograd treats as zero. An unshared layer has one use and gets the plain
// product.
struct GradSum : torch::CustomClassHolder {
  std::mutex mu;
  uint64_t pass = 0;     // the forward pass (albert_linear_pass) it belongs to
  int64_t pending = 0;   // uses whose backward has not run yet
  bool started = false;  // a backward has run: no more uses join
  at::Tensor dw, db;     // a weight's sums
  at::Tensor dx;         // an input's sum (query, key and value share theirs)
  at::Tensor key;        // the tensor summed for: held, so its address is not reused while the sum lives
  // The registry's weak reference keeps the object (not its tensors) once the
  // last strong one is gone: let the tensors go then.
  void release_resources() override {
    dw.reset();
    db.reset();
    dx.reset();
    key.reset();
  }
};

// current_pass numbers forward passes: uses of a weight join one sum only
// within one pass, so two forwards' graphs never share a sum however their
// backwards interleave.
std::atomic<uint64_t> current_pass{0};

// open_sums maps a tensor (its TensorImpl) to its latest sum. Entries are
// weak: a graph freed without a backward frees its sum. A live sum holds
// its tensor, so no other tensor can take that address meanwhile.
std::mutex open_sums_mu;
std::unordered_map<const void*, c10::weak_intrusive_ptr<GradSum>> open_sums;

// join_sum returns the sum a new use of t belongs to, counting the use.
c10::intrusive_ptr<GradSum> join_sum(const at::Tensor& t) {
  const uint64_t pass = current_pass.load();
  std::lock_guard<std::mutex> lock(open_sums_mu);
  auto it = open_sums.find(t.unsafeGetTensorImpl());
  if (it != open_sums.end()) {
    if (auto sum = it->second.lock()) {
      std::lock_guard<std::mutex> l(sum->mu);
      if (!sum->started && sum->pass == pass) {
        sum->pending++;
        return sum;
      }
    }
  }
  auto sum = c10::make_intrusive<GradSum>();
  sum->pass = pass;
  sum->pending = 1;
  sum->key = t;
  c10::weak_intrusive_ptr<GradSum> weak(sum);
  if (it != open_sums.end()) {
    it->second = std::move(weak);
  } else {
    open_sums.emplace(t.unsafeGetTensorImpl(), std::move(weak));
    // Activations are new tensors every pass: drop the entries of finished sums.
    static size_t sweep_at = 256;
    if (open_sums.size() > sweep_at) {
      for (auto e = open_sums.begin(); e != open_sums.end();) e = e->second.expired() ? open_sums.erase(e) : std::next(e);
      sweep_at = std::max<size_t>(256, 2 * open_sums.size());
    }
  }
  return sum;
}

struct Linear : public torch::autograd::Function<Linear> {
  // x [..., in] · wᵀ + b with w [out, in], as torch's linear (one addmm).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            c10::intrusive_ptr<GradSum> sum, c10::intrusive_ptr<GradSum> xsum) {
    auto x2 = x.reshape({-1, x.size(-1)});
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = w.size(0);
    auto out = at::empty(shape, x.options());
    auto out2 = out.view({x2.size(0), w.size(0)});
    at::addmm_out(out2, b, x2, w.t());
    ctx->save_for_backward({x2, w});
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    if (sum) ctx->saved_data["sum"] = c10::IValue::make_capsule(sum);
    if (xsum) ctx->saved_data["xsum"] = c10::IValue::make_capsule(xsum);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x2 = saved[0];
    const auto& w = saved[1];
    auto g = grads[0].reshape({-1, w.size(0)});
    const bool need_w = ctx->needs_input_grad(1), need_b = ctx->needs_input_grad(2);
    // The bias gradient first, while g is still in cache from the op that made it.
    at::Tensor dx, dw, db = need_b ? colsum(g) : at::Tensor();
    auto xit = ctx->saved_data.find("xsum");
    if (xit == ctx->saved_data.end()) {
      if (ctx->needs_input_grad(0)) dx = at::mm(g, w).view(ctx->saved_data["x_sizes"].toIntVector());
    } else {  // x feeds several dense layers: their input gradients add up inside the GEMM
      auto xsum = c10::static_intrusive_pointer_cast<GradSum>(xit->second.toCapsule());
      std::lock_guard<std::mutex> lock(xsum->mu);
      xsum->started = true;
      if (ctx->needs_input_grad(0)) {
        if (xsum->dx.defined()) xsum->dx.view({-1, w.size(1)}).addmm_(g, w);
        else xsum->dx = at::mm(g, w).view(ctx->saved_data["x_sizes"].toIntVector());
      }
      if (--xsum->pending == 0) dx = std::move(xsum->dx);
    }
    auto it = ctx->saved_data.find("sum");
    if (it == ctx->saved_data.end()) {
      if (need_w) dw = at::mm(g.t(), x2);
    } else {
      auto sum = c10::static_intrusive_pointer_cast<GradSum>(it->second.toCapsule());
      std::lock_guard<std::mutex> lock(sum->mu);
      sum->started = true;
      if (need_w) {
        if (sum->dw.defined()) sum->dw.addmm_(g.t(), x2);
        else sum->dw = at::mm(g.t(), x2);
      }
      if (need_b) {
        if (sum->db.defined()) sum->db.add_(db);
        else sum->db = db;
        db = at::Tensor();
      }
      if (--sum->pending == 0) {
        dw = std::move(sum->dw);
        db = std::move(sum->db);
      }
    }
    return {dx, dw, db, at::Tensor(), at::Tensor()};
  }
};

// ------------------------------------------------------------------ profiler

// A per-op profile of the calling thread: every RecordFunction scope (each
// ATen op, each autograd node, each kernel entry point here) is timed and
// summed by name, with self time = time not spent in nested scopes. The
// autograd engine runs a CPU backward on the calling thread, so one thread
// sees the whole step; OpenMP workers run inside the ops they belong to.
struct OpStat {
  int64_t calls = 0;
  double self_us = 0, total_us = 0;
};
struct ProfFrame {
  std::string name;
  std::chrono::steady_clock::time_point start;
  double child_us = 0;
};
thread_local std::vector<ProfFrame> prof_stack;
std::mutex prof_mu;
std::unordered_map<std::string, OpStat> prof_stats;
bool prof_on = false;
at::CallbackHandle prof_handle = 0;

std::unique_ptr<at::ObserverContext> prof_enter(const at::RecordFunction& fn) {
  prof_stack.push_back({fn.name(), std::chrono::steady_clock::now(), 0});
  return nullptr;
}

void prof_exit(const at::RecordFunction&, at::ObserverContext*) {
  if (prof_stack.empty()) return;
  ProfFrame f = std::move(prof_stack.back());
  prof_stack.pop_back();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - f.start).count();
  if (!prof_stack.empty()) prof_stack.back().child_us += us;
  std::lock_guard<std::mutex> lock(prof_mu);
  auto& st = prof_stats[f.name];
  st.calls++;
  st.total_us += us;
  st.self_us += us - f.child_us;
}

// record marks a kernel entry point as one scope in the profile.
#define ALBERT_RECORD(name)                                        \
  at::RecordFunction albert_record_(at::RecordScope::USER_SCOPE); \
  if (albert_record_.isActive()) albert_record_.before(name)

char* error_copy(const char* msg) {
  char* e = static_cast<char*>(std::malloc(std::strlen(msg) + 1));
  std::strcpy(e, msg);
  return e;
}

}  // namespace

// Autocast by device: libtorch 2.4 replaced the per-device functions (now
// deprecated) by ones taking the device type.
#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
static bool autocast_on(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
static void set_autocast(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
static void set_autocast_bf16(bool cuda) { at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, at::kBFloat16); }
#else
static bool autocast_on(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
static void set_autocast(bool cuda, bool on) {
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
}
static void set_autocast_bf16(bool cuda) {
  if (cuda) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  else at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
}
#endif

#define ALBERT_GUARD(body)               \
  try {                                  \
    body;                                \
    return nullptr;                      \
  } catch (const c10::Error& e) {        \
    return error_copy(e.what_without_backtrace()); \
  } catch (const std::exception& e) {    \
    return error_copy(e.what());         \
  }

extern "C" {

// albert_kernels_abi is the version of this C ABI; kernels/kernels.go checks
// it. Adding functions keeps it (albert_autocast, albert_tf32 came in ABI 5:
// binaries built before them still load this library).
int albert_kernels_abi() { return 5; }

// albert_gelu_tanh sets *out to GELU_tanh(x) (float32, CPU), differentiable.
char* albert_gelu_tanh(void* x, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::gelu_tanh");
    const auto& t = *static_cast<at::Tensor*>(x);
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "albert_gelu_tanh: want a CPU float tensor");
    *out = new at::Tensor(GeluTanh::apply(t));
  })
}

// albert_dropout sets *out to inverted dropout of x (CPU float32) with drop
// probability p and the keep mask of SplitMix64 stream key (see above),
// differentiable.
char* albert_dropout(void* x, double p, uint64_t key, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::dropout");
    const auto& t = *static_cast<at::Tensor*>(x);
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, "albert_dropout: want a CPU float tensor");
    TORCH_CHECK(p >= 0 && p < 1, "albert_dropout: p = ", p, " is not in [0, 1)");
    *out = new at::Tensor(Dropout::apply(t, p, int64_t(key)));
  })
}

// albert_dropout_add sets *out to albert_dropout(x) + res (CPU float32,
// same shape), differentiable in both.
char* albert_dropout_add(void* x, void* res, double p, uint64_t key, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::dropout_add");
    const auto& t = *static_cast<at::Tensor*>(x);
    const auto& r = *static_cast<at::Tensor*>(res);
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && r.device().is_cpu() && r.scalar_type() == at::kFloat,
                "albert_dropout_add: want CPU float tensors");
    TORCH_CHECK(p >= 0 && p < 1, "albert_dropout_add: p = ", p, " is not in [0, 1)");
    *out = new at::Tensor(DropoutAdd::apply(t, r, p, int64_t(key)));
  })
}

// albert_softmax_dropout sets *out to dropout(softmax(scale·scores + mask))
// over the last dimension of scores [B, nh, S, S] (CPU float32), mask the
// additive [B,1,1,S] attention mask, with albert_dropout's mask for key;
// differentiable in scores.
char* albert_softmax_dropout(void* scores, void* mask, double scale, double p, uint64_t key, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::softmax_dropout");
    const auto& s = *static_cast<at::Tensor*>(scores);
    const auto& m = *static_cast<at::Tensor*>(mask);
    TORCH_CHECK(s.dim() == 4 && s.device().is_cpu() && s.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat,
                "albert_softmax_dropout: want CPU float scores [B, nh, S, S]");
    TORCH_CHECK(p >= 0 && p < 1, "albert_softmax_dropout: p = ", p, " is not in [0, 1)");
    *out = new at::Tensor(SoftmaxDropout::apply(s, m, scale, p, int64_t(key)));
  })
}

// albert_bmm sets *out to a @ b over the leading (batch) dimensions of two
// 3-D or 4-D CPU tensors of one floating dtype, differentiable.
char* albert_bmm(void* a, void* b, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::bmm");
    const auto& ta = *static_cast<at::Tensor*>(a);
    const auto& tb = *static_cast<at::Tensor*>(b);
    TORCH_CHECK(ta.device().is_cpu() && tb.device().is_cpu(), "albert_bmm: want CPU tensors");
    TORCH_CHECK(ta.scalar_type() == tb.scalar_type(), "albert_bmm: dtypes differ");
    *out = new at::Tensor(BMM::apply(ta, tb));
  })
}

// albert_lamb applies one LAMB (trust != 0) or AdamW update to parameter w
// in place from gradient g (times *gscale when gscale is not NULL, the
// clipping factor) and moments m, v; wd is the decoupled weight decay (0:
// none); mc and vc scale m and v inside the update (Adam's bias correction
// 1/(1-β^t); 1 and 1 without it). Everything is CPU float32 and contiguous
// (g may be strided).
char* albert_lamb(void* w, void* g, void* m, void* v, void* gscale, double lr, double beta1, double beta2,
                  double eps, double wd, double mc, double vc, int trust) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::lamb");
    at::NoGradGuard no_grad;
    lamb(*static_cast<at::Tensor*>(w), *static_cast<at::Tensor*>(g), *static_cast<at::Tensor*>(m),
         *static_cast<at::Tensor*>(v), static_cast<at::Tensor*>(gscale), lr, beta1, beta2, eps, wd, mc, vc, trust != 0);
  })
}

#ifndef ALBERT_NO_FOREACH  // torchbuild retries without it if it does not compile
// albert_lamb_foreach applies albert_lamb's update to n parameters at once,
// all with weight decay wd and the trust ratio when trust != 0, in ATen's
// multi-tensor ops (lamb_foreach): w[i], g[i], m[i], v[i] are the i-th
// parameter, gradient and moments, all of one floating dtype on one device,
// CUDA included; gscale as in albert_lamb. A library without this symbol
// (built before it) still speaks ABI 5: callers fall back to composed ops.
char* albert_lamb_foreach(void** w, void** g, void** m, void** v, int n, void* gscale, double lr, double beta1,
                          double beta2, double eps, double wd, double mc, double vc, int trust) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::lamb_foreach");
    at::NoGradGuard no_grad;
    TORCH_CHECK(n >= 0, "albert_lamb_foreach: n = ", n);
    std::vector<at::Tensor> ws;  // (one a line: ALBERT_GUARD is a macro)
    std::vector<at::Tensor> gs;
    std::vector<at::Tensor> ms;
    std::vector<at::Tensor> vs;
    for (int i = 0; i < n; i++) {
      ws.push_back(*static_cast<at::Tensor*>(w[i]));
      gs.push_back(*static_cast<at::Tensor*>(g[i]));
      ms.push_back(*static_cast<at::Tensor*>(m[i]));
      vs.push_back(*static_cast<at::Tensor*>(v[i]));
    }
    lamb_foreach(ws, gs, ms, vs, static_cast<at::Tensor*>(gscale), lr, beta1, beta2, eps, wd, mc, vc, trust != 0);
  })
}
#endif  // ALBERT_NO_FOREACH

// albert_linear_pass starts a new forward pass for albert_linear.
void albert_linear_pass() { current_pass.fetch_add(1); }

// albert_linear sets *out to x·wᵀ + b over the last dimension of x, CPU
// float32, differentiable. Under grad mode each call is a use of w whose
// weight and bias gradients are summed with w's other uses in the same pass
// (since the last albert_linear_pass) and returned by the last use's
// backward (see GradSum). So every use in a pass must be on the path of
// that pass's backward, and a graph is backpropagated once.
char* albert_linear(void* x, void* w, void* b, void** out) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::linear");
    const auto& tx = *static_cast<at::Tensor*>(x);
    const auto& tw = *static_cast<at::Tensor*>(w);
    const auto& tb = *static_cast<at::Tensor*>(b);
    for (const auto* t : {&tx, &tw, &tb}) {
      TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat, "albert_linear: want CPU float tensors");
    }
    TORCH_CHECK(tx.dim() >= 1 && tw.dim() == 2 && tb.dim() == 1 && tx.size(-1) == tw.size(1) && tb.size(0) == tw.size(0),
                "albert_linear: x ", tx.sizes(), ", weight ", tw.sizes(), ", bias ", tb.sizes(), " do not fit");
    c10::intrusive_ptr<GradSum> sum;
    c10::intrusive_ptr<GradSum> xsum;
    if (at::GradMode::is_enabled() && (tw.requires_grad() || tb.requires_grad())) sum = join_sum(tw);
    if (at::GradMode::is_enabled() && tx.requires_grad()) xsum = join_sum(tx);
    *out = new at::Tensor(Linear::apply(tx, tw, tb, sum, xsum));
  })
}

// albert_global_norm sets *norm to √(Σ over the n tensors of Σx²) (CPU
// float32; a float32 scalar tensor) and, when max_norm > 0, *factor to
// max_norm / max(norm, max_norm), the clipping factor (else NULL).
char* albert_global_norm(void** tensors, int n, double max_norm, void** norm, void** factor) {
  ALBERT_GUARD({
    ALBERT_RECORD("albert::global_norm");
    std::vector<at::Tensor> ts;
    for (int i = 0; i < n; i++) ts.push_back(*static_cast<at::Tensor*>(tensors[i]));
    const double g = global_norm(ts);
    *norm = new at::Tensor(at::scalar_tensor(g, at::kFloat));
    *factor = max_norm > 0 ? new at::Tensor(at::scalar_tensor(max_norm / std::max(g, max_norm), at::kFloat)) : nullptr;
  })
}

// albert_profile_start starts the calling thread's per-op profile.
char* albert_profile_start() {
  ALBERT_GUARD({
    std::lock_guard<std::mutex> lock(prof_mu);
    TORCH_CHECK(!prof_on, "albert_profile_start: already profiling");
    prof_stats.clear();
    prof_stack.clear();
    prof_handle = at::addThreadLocalCallback(
        at::RecordFunctionCallback(prof_enter, prof_exit)
            .needsInputs(false)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION, at::RecordScope::USER_SCOPE}));
    prof_on = true;
  })
}

// albert_profile_stop ends the profile and sets *out to one line per scope
// name, "calls<TAB>self µs<TAB>total µs<TAB>name", to be freed by the caller.
char* albert_profile_stop(char** out) {
  ALBERT_GUARD({
    std::lock_guard<std::mutex> lock(prof_mu);
    TORCH_CHECK(prof_on, "albert_profile_stop: not profiling");
    at::removeCallback(prof_handle);
    prof_on = false;
    std::ostringstream o;
    for (const auto& [name, st] : prof_stats) o << st.calls << '\t' << st.self_us << '\t' << st.total_us << '\t' << name << '\n';
    *out = error_copy(o.str().c_str());
  })
}

// albert_autocast turns libtorch's autocast on (enabled != 0, in bfloat16) or
// off for the calling thread's ops on the CPU (cuda == 0) or CUDA, and sets
// *was to whether it was on. Turning it off clears autocast's cache of cast
// weights (which holds bf16 copies of the parameters until then).
char* albert_autocast(int cuda, int enabled, int* was) {
  ALBERT_GUARD({
    *was = autocast_on(cuda != 0);
    if (enabled) set_autocast_bf16(cuda != 0);
    set_autocast(cuda != 0, enabled != 0);
    if (!enabled) at::autocast::clear_cache();
  })
}

// albert_autocast_on reports whether autocast is on for the calling thread's
// CPU (cuda == 0) or CUDA ops.
int albert_autocast_on(int cuda) { return autocast_on(cuda != 0); }

// albert_tf32 sets whether CUDA float32 matmuls (cuBLAS) may use TF32
// tensor cores, a process-wide libtorch setting, and sets *was to what it
// was. (cuDNN's TF32 flag is left at libtorch's default, on: the model has no
// convolutions.) On a CPU-only libtorch it only records the flag.
char* albert_tf32(int on, int* was) {
  ALBERT_GUARD({
    *was = at::globalContext().allowTF32CuBLAS();
    at::globalContext().setAllowTF32CuBLAS(on != 0);
  })
}

}  // extern "C"
