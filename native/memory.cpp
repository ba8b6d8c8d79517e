// The allocator's native side (lib/memory.ts): 64-byte-aligned blocks, and a table of weak
// references to the arrays the allocator gives out.
//
// A weak napi_ref is cleared by the garbage collector itself, during the collection, so
// collectDead() learns which arrays died without waiting for the event loop: a training loop is
// synchronous and never yields to it (FinalizationRegistry callbacks and external-buffer
// finalizers run only from the event loop). The table is per environment (each worker thread has
// its own).
#include <napi.h>

#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels answer EINVAL and the pages fault one by one
#endif
#endif

#include "memory.h"

namespace sg {
namespace {

struct WeakTable {
  std::vector<napi_ref> refs;  // by id; nullptr where the id is free
  std::vector<int32_t> free_ids;
};

WeakTable& table(napi_env env) {
  WeakTable* t = Napi::Env(env).GetInstanceData<WeakTable>();
  if (!t) {
    t = new WeakTable();
    Napi::Env(env).SetInstanceData(t);  // deleted with the environment, whose teardown frees the refs
  }
  return *t;
}

int64_t integer_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t hi) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": expected " + name + " to be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= (double)hi && d == (double)(int64_t)d))
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": expected " + name + " to be an integer from 0 to " +
                                                std::to_string(hi));
  return (int64_t)d;
}

#if defined(__linux__)
// madvise(advice) over the whole pages in [data, data + bytes): the partial pages at the ends may
// hold another allocation's bytes. Errors are ignored (an old kernel: the advice is only advice).
void advise_whole_pages(void* data, size_t bytes, int advice) {
  static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, advice);
}
#endif

// Blocks from this size on start on a 2 MiB boundary, and their whole 2 MiB chunks are asked to be
// transparent huge pages (the advice does nothing where the system offers none). Streaming through
// large arrays on 4 KiB pages misses the TLB every 4 KiB, and in a virtual machine each miss walks
// two page tables.
constexpr int64_t kHugeBytes = (int64_t)2 << 20;

// alignedBlock(bytes) -> a Uint8Array of `bytes` bytes whose first byte is 64-byte aligned (2 MiB
// aligned from kHugeBytes on), over a fresh ArrayBuffer (zero-filled by V8) of up to 63 bytes more
// (2 MiB more from kHugeBytes on, never touched), its pages faulted in
Napi::Value AlignedBlock(const Napi::CallbackInfo& info) {
  const int64_t bytes = integer_arg(info, 0, "alignedBlock", "bytes", (int64_t)1 << 46);
  const int64_t align = bytes >= kHugeBytes ? kHugeBytes : 64;
  void* data;
  napi_value buffer, view;
  if (napi_create_arraybuffer(info.Env(), (size_t)(bytes + align - 1), &data, &buffer) != napi_ok)
    throw Napi::RangeError::New(info.Env(), "stablegrad: out of memory");
  const size_t offset = (size_t)((align - (int64_t)(reinterpret_cast<uintptr_t>(data) % (uintptr_t)align)) % align);
  char* begin = static_cast<char*>(data) + offset;
#if defined(__linux__)
  if (bytes >= kHugeBytes) {
    (void)madvise(begin, (size_t)(bytes / kHugeBytes * kHugeBytes), MADV_HUGEPAGE);
    // the slack around the block is never used: its pages (if calloc zeroed them) go back
    advise_whole_pages(data, offset, MADV_DONTNEED);
    advise_whole_pages(begin + bytes, (size_t)(align - 1) - offset, MADV_DONTNEED);
  }
  // faulted in at once: every block is written in full soon after, and one madvise costs half as
  // much as faulting page by page (1.35 against 2.65 ms per MiB on the benchmark's machines)
  advise_whole_pages(begin, (size_t)bytes, MADV_POPULATE_WRITE);
#endif
  NAPI_THROW_IF_FAILED(info.Env(), napi_create_typedarray(info.Env(), napi_uint8_array, (size_t)bytes, buffer, offset, &view),
                       Napi::Value());
  return Napi::Value(info.Env(), view);
}

// dropPages(block): gives the physical pages under the block's whole ArrayBuffer back to the system
// now, for a block the cache drops (its ArrayBuffer is freed only when a major collection finds it;
// detaching it instead would disarm V8's detach protector and slow every typed-array access after).
// The buffer stays valid and reads as zeros.
Napi::Value DropPages(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsTypedArray())
    throw Napi::TypeError::New(info.Env(), "dropPages: expected a Uint8Array");
#if defined(__linux__)
  Napi::ArrayBuffer buffer = info[0].As<Napi::TypedArray>().ArrayBuffer();
  advise_whole_pages(buffer.Data(), buffer.ByteLength(), MADV_DONTNEED);
#endif
  return info.Env().Undefined();
}

// watch(object) -> id: a weak reference to the object
Napi::Value Watch(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "watch: expected an object");
  WeakTable& t = table(info.Env());
  napi_ref ref;
  NAPI_THROW_IF_FAILED(info.Env(), napi_create_reference(info.Env(), info[0], 0, &ref), Napi::Value());
  int32_t id;
  if (!t.free_ids.empty()) {
    id = t.free_ids.back();
    t.free_ids.pop_back();
    t.refs[id] = ref;
  } else {
    id = (int32_t)t.refs.size();
    t.refs.push_back(ref);
  }
  return Napi::Number::New(info.Env(), id);
}

void forget(napi_env env, WeakTable& t, int32_t id) {
  napi_delete_reference(env, t.refs[id]);
  t.refs[id] = nullptr;
  t.free_ids.push_back(id);
}

// unwatch(id): drops the reference (the allocator took the array back itself)
Napi::Value Unwatch(const Napi::CallbackInfo& info) {
  WeakTable& t = table(info.Env());
  const int64_t id = integer_arg(info, 0, "unwatch", "id", INT32_MAX);
  if (id >= (int64_t)t.refs.size() || !t.refs[id]) throw Napi::RangeError::New(info.Env(), "unwatch: no such id");
  forget(info.Env(), t, (int32_t)id);
  return info.Env().Undefined();
}

// isCollected(id) -> whether the garbage collector has taken the object (a free id counts as taken)
Napi::Value IsCollected(const Napi::CallbackInfo& info) {
  WeakTable& t = table(info.Env());
  const int64_t id = integer_arg(info, 0, "isCollected", "id", INT32_MAX);
  napi_value value = nullptr;
  if (id < (int64_t)t.refs.size() && t.refs[id]) napi_get_reference_value(info.Env(), t.refs[id], &value);
  return Napi::Boolean::New(info.Env(), value == nullptr);
}

// collectDead(out: Int32Array) -> count: the ids of watched objects that the garbage collector has
// taken, written to out (as many as fit), and forgotten
Napi::Value CollectDead(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), "collectDead: expected an Int32Array");
  Napi::Int32Array out = info[0].As<Napi::Int32Array>();
  WeakTable& t = table(info.Env());
  size_t count = 0;
  for (size_t id = 0; id < t.refs.size() && count < out.ElementLength(); id++) {
    if (!t.refs[id]) continue;
    napi_value value;
    if (napi_get_reference_value(info.Env(), t.refs[id], &value) == napi_ok && value == nullptr) {
      forget(info.Env(), t, (int32_t)id);
      out[count++] = (int32_t)id;
    }
  }
  return Napi::Number::New(info.Env(), (double)count);
}

}  // namespace

void register_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("alignedBlock", Napi::Function::New(env, AlignedBlock, "alignedBlock"));
  exports.Set("dropPages", Napi::Function::New(env, DropPages, "dropPages"));
  exports.Set("watch", Napi::Function::New(env, Watch, "watch"));
  exports.Set("unwatch", Napi::Function::New(env, Unwatch, "unwatch"));
  exports.Set("isCollected", Napi::Function::New(env, IsCollected, "isCollected"));
  exports.Set("collectDead", Napi::Function::New(env, CollectDead, "collectDead"));
}

}  // namespace sg
