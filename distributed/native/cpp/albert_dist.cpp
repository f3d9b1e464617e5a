// albert_dist: a small C ABI over torch's c10d (TCPStore + ProcessGroupGloo,
// and ProcessGroupNCCL where the libtorch has it) for package distributed.
//
// Built by torchbuild into libalbert_dist.so, beside libtch.so and
// libalbert_kernels.so but as its own library: it needs Gloo's headers
// (Debian: libgloo-dev) and, for NCCL, libtorch_cuda and nccl.h, none of
// which the fused kernels need, so a libtorch without them still gets the
// kernels. Tensor handles are gotch's (at::Tensor*). Every function returns
// NULL or a malloc'd error string the caller frees.
//
// The c10d API moved between libtorch 1.13 (ProcessGroupGloo derives from
// ProcessGroup) and 2.x (it derives from Backend); both have the methods used
// here with the same signatures, so the group is held by its concrete type
// behind a small interface.

#include <torch/torch.h>
#include <torch/version.h>

// c10d::Work (a class of its own, Work.hpp) and TCPStoreOptions arrived in
// libtorch 1.13; before, Work was ProcessGroup::Work. 2.x kept both and made
// ProcessGroupGloo/NCCL Backends, which this file does not depend on.
#if TORCH_VERSION_MAJOR < 1 || (TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR < 13)
#error "albert_dist needs libtorch 1.13 or later (c10d::Work, TCPStoreOptions)"
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

char* error_copy(const char* msg) {
  char* e = static_cast<char*>(std::malloc(std::strlen(msg) + 1));
  std::strcpy(e, msg);
  return e;
}

using ms = std::chrono::milliseconds;

// Group is one process group: the collectives package distributed uses.
struct Group {
  virtual ~Group() = default;
  virtual c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& ts) = 0;
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& ts, int root) = 0;
  virtual c10::intrusive_ptr<c10d::Work> barrier() = 0;
};

template <typename PG>
struct GroupOf : Group {
  c10::intrusive_ptr<PG> pg;
  explicit GroupOf(c10::intrusive_ptr<PG> p) : pg(std::move(p)) {}
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& ts) override {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return pg->allreduce(ts, o);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& ts, int root) override {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    return pg->broadcast(ts, o);
  }
  c10::intrusive_ptr<c10d::Work> barrier() override { return pg->barrier(c10d::BarrierOptions()); }
};

struct Handle {
  c10::intrusive_ptr<c10d::Store> store;  // the TCPStore: rendezvous and our own keys (prefix "albert/")
  std::unique_ptr<Group> group;
  at::Device comm;  // where collectives run: CPU (Gloo) or the rank's CUDA device (NCCL)
  int rank = 0, world = 1;
  ms timeout{0};
  Handle() : comm(at::kCPU) {}
};

// wait blocks on w up to the group's timeout; a peer that died surfaces
// here (Gloo: connection closed; otherwise the timeout).
void wait(Handle* h, const c10::intrusive_ptr<c10d::Work>& w) {
  if (!w->wait(h->timeout)) {
    TORCH_CHECK(false, "collective did not complete within ", h->timeout.count(), " ms");
  }
}

// Buckets of tensors of one dtype, each up to cap bytes (a tensor larger
// than cap is a bucket of its own), in the given order.
std::vector<std::vector<size_t>> buckets(const std::vector<at::Tensor>& ts, int64_t cap) {
  std::map<at::ScalarType, std::vector<std::vector<size_t>>> by;
  std::map<at::ScalarType, int64_t> fill;
  std::vector<at::ScalarType> order;
  for (size_t i = 0; i < ts.size(); i++) {
    auto st = ts[i].scalar_type();
    auto& bs = by[st];
    if (bs.empty()) order.push_back(st);
    int64_t n = ts[i].numel() * ts[i].element_size();
    if (bs.empty() || (cap > 0 && fill[st] + n > cap && !bs.back().empty())) {
      bs.emplace_back();
      fill[st] = 0;
    }
    bs.back().push_back(i);
    fill[st] += n;
  }
  std::vector<std::vector<size_t>> out;
  for (auto st : order)
    for (auto& b : by[st]) out.push_back(b);
  return out;
}

// flat copies the bucket's tensors into one contiguous 1-D tensor on dev.
at::Tensor flat(const std::vector<at::Tensor>& ts, const std::vector<size_t>& idx, at::Device dev) {
  std::vector<at::Tensor> parts;
  parts.reserve(idx.size());
  for (auto i : idx) parts.push_back(ts[i].reshape({-1}).to(dev));
  return parts.size() == 1 ? parts[0].clone() : at::cat(parts);
}

// unflat copies a flat bucket back into its tensors, in place.
void unflat(const at::Tensor& f, const std::vector<at::Tensor>& ts, const std::vector<size_t>& idx) {
  int64_t off = 0;
  for (auto i : idx) {
    auto n = ts[i].numel();
    ts[i].copy_(f.narrow(0, off, n).view(ts[i].sizes()));
    off += n;
  }
}

std::vector<at::Tensor> tensors(void** ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*static_cast<at::Tensor*>(ts[i]));
  return out;
}

}  // namespace

#define ALBERT_GUARD(body)                           \
  try {                                              \
    body;                                            \
    return nullptr;                                  \
  } catch (const c10::Error& e) {                    \
    return error_copy(e.what_without_backtrace());   \
  } catch (const std::exception& e) {                \
    return error_copy(e.what());                     \
  }

extern "C" {

// albert_dist_abi is the version of this C ABI; distributed/dist.go checks it.
int albert_dist_abi() { return 1; }

// albert_dist_backends names the process groups compiled in, comma-separated.
const char* albert_dist_backends() {
  return ""
#ifdef USE_C10D_GLOO
         "gloo"
#endif
#if defined(USE_C10D_GLOO) && defined(USE_C10D_NCCL)
         ","
#endif
#ifdef USE_C10D_NCCL
         "nccl"
#endif
      ;
}

// albert_dist_torch_version is the libtorch this library was compiled against.
const char* albert_dist_torch_version() { return TORCH_VERSION; }

// albert_dist_init joins the world of size world as rank: rank 0 serves the
// TCPStore on host:port, every rank connects to it, then the backend's
// process group ("gloo" or "nccl", on CUDA device cuda_index) rendezvous
// through it. ifname, when not empty, names the network interface Gloo
// uses (else the loopback for a local world, the host's address otherwise).
// timeout_ms bounds the rendezvous and every collective.
char* albert_dist_init(const char* backend, const char* host, int port, int rank, int world, long long timeout_ms,
                       const char* ifname, int cuda_index, void** out) {
  ALBERT_GUARD({
    TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " is not in a world of ", world);
    TORCH_CHECK(port > 0 && port < 65536, "port ", port, " out of range");
    auto h = std::make_unique<Handle>();
    h->rank = rank;
    h->world = world;
    h->timeout = ms(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = h->timeout;
    h->store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("pg", h->store);
    std::string b(backend);
    if (b == "gloo") {
#ifdef USE_C10D_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(h->timeout);
      std::string ifn(ifname);
      std::string hs(host);
      if (!ifn.empty()) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifn));
      } else if (hs == "127.0.0.1" || hs == "localhost") {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      o->threads = 2;
      h->group = std::make_unique<GroupOf<c10d::ProcessGroupGloo>>(
          c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, o));
#else
      TORCH_CHECK(false, "this libalbert_dist.so was built without Gloo (no gloo headers at build time)");
#endif
    } else if (b == "nccl") {
#ifdef USE_C10D_NCCL
      // Untested: written against libtorch 2.x's ProcessGroupNCCL; no GPU
      // was available when it was written.
      h->comm = at::Device(at::kCUDA, cuda_index);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = h->timeout;
      h->group = std::make_unique<GroupOf<c10d::ProcessGroupNCCL>>(
          c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, o));
#else
      TORCH_CHECK(false, "this libalbert_dist.so was built without NCCL (a CPU libtorch, or no nccl.h at build time)");
#endif
    } else {
      TORCH_CHECK(false, "unknown backend \"", b, "\": want gloo or nccl");
    }
    *out = h.release();
  })
}

// albert_dist_allreduce sums the n tensors over the world in place (each
// rank's tensors of the same shapes, in the same order), divided by the world
// size when average is set. Tensors are packed into buckets of up to
// bucket_bytes per dtype; every bucket's collective is started before the
// first is waited on, so Gloo's threads work on them back to back.
char* albert_dist_allreduce(void* hp, void** ts, int n, int average, long long bucket_bytes) {
  ALBERT_GUARD({
    auto* h = static_cast<Handle*>(hp);
    at::NoGradGuard ng;
    auto in = tensors(ts, n);
    auto bs = buckets(in, bucket_bytes);
    std::vector<at::Tensor> flats;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& b : bs) {
      std::vector<at::Tensor> one{flat(in, b, h->comm)};
      works.push_back(h->group->allreduce(one));
      flats.push_back(one[0]);
    }
    for (size_t i = 0; i < bs.size(); i++) {
      wait(h, works[i]);
      if (average && h->world > 1) flats[i].div_(h->world);
      unflat(flats[i], in, bs[i]);
    }
  })
}

// albert_dist_broadcast copies root's n tensors into every rank's, in place.
char* albert_dist_broadcast(void* hp, void** ts, int n, int root) {
  ALBERT_GUARD({
    auto* h = static_cast<Handle*>(hp);
    at::NoGradGuard ng;
    auto in = tensors(ts, n);
    auto bs = buckets(in, 0);  // one bucket per dtype
    for (auto& b : bs) {
      std::vector<at::Tensor> one{flat(in, b, h->comm)};
      wait(h, h->group->broadcast(one, root));
      unflat(one[0], in, b);
    }
  })
}

// albert_dist_barrier returns when every rank has called it.
char* albert_dist_barrier(void* hp) {
  ALBERT_GUARD({
    auto* h = static_cast<Handle*>(hp);
    wait(h, h->group->barrier());
  })
}

// albert_dist_store_set sets key to the len bytes at val in the TCPStore.
char* albert_dist_store_set(void* hp, const char* key, const char* val, int len) {
  ALBERT_GUARD({
    auto* h = static_cast<Handle*>(hp);
    std::vector<uint8_t> v(val, val + len);
    h->store->set(std::string("albert/") + key, v);
  })
}

// albert_dist_store_get waits up to timeout_ms for key and sets *val (malloc'd,
// the caller frees it) and *len to its value.
char* albert_dist_store_get(void* hp, const char* key, long long timeout_ms, char** val, int* len) {
  ALBERT_GUARD({
    auto* h = static_cast<Handle*>(hp);
    std::string k = std::string("albert/") + key;
    h->store->wait({k}, ms(timeout_ms));
    auto v = h->store->get(k);
    char* buf = static_cast<char*>(std::malloc(v.size() + 1));
    if (!v.empty()) std::memcpy(buf, v.data(), v.size());
    buf[v.size()] = 0;
    *val = buf;
    *len = static_cast<int>(v.size());
  })
}

// albert_dist_destroy frees the group and the store connection.
void albert_dist_destroy(void* hp) {
  try {
    delete static_cast<Handle*>(hp);
  } catch (...) {
  }
}

}  // extern "C"
