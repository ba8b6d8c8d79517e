// The N-API boundary. Each kernel's wrapper is written from its schema (lib/backend/schema.ts) into
// binding.gen.h by scripts/gen-binding.js: it checks the argument count, every argument's kind,
// every size and every array's length against the sizes, in the schema's order, then calls one
// kernel on the arrays' memory (zero copy). Wrong kinds throw TypeError, wrong sizes RangeError,
// and the messages are the same, word for word, as lib/backend/validate.ts gives for the
// TypeScript fallback, written from the same schema (a test holds them equal):
//   sgemm: expected A to be a Float32Array but received number
//   sgemm: expected A to have at least 12 elements but received 10
// Nothing JavaScript can pass reaches a kernel with an array too short for it. This file holds
// what the wrappers share (Args), and the runtime functions (info, setIsa, setThreads, probes).
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/threadpool.h"
#include "memory.h"

namespace {

using sg::kernels;

constexpr int64_t kMaxSize = INT32_MAX;

int64_t mul_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

// The JavaScript name of a value's kind, as in the messages: number, null, Float64Array, Array, ...
std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_function: return "function";
    case napi_bigint: return "bigint";
    default: break;
  }
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      case napi_uint8_clamped_array: return "Uint8ClampedArray";
      case napi_int16_array: return "Int16Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_bigint64_array: return "BigInt64Array";
      case napi_biguint64_array: return "BigUint64Array";
      default: return "TypedArray";
    }
  }
  if (v.IsArray()) return "Array";
  if (v.IsArrayBuffer()) return "ArrayBuffer";
  return "object";
}

// A typed array argument as Args found it: its first element, its length (-1 for null), its bytes.
struct View {
  void* data;
  int64_t length;
  size_t bytes;
  bool null() const { return length < 0; }
};

// Argument access for one call of one function; every accessor throws on a bad argument. Each
// reads its argument with one N-API call, which also tells a wrong kind (napi_get_value_double
// fails on anything but a number, napi_get_typedarray_info on anything but a typed array, and
// gives the type, length and data pointer at once); node-addon-api's accessors take one call per
// property (five for a Float32Array's pointer), more than a small kernel. The messages are built
// only on the error path.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn, size_t count) : info_(info), env_(info.Env()), fn_(fn) {
    if (info.Length() != count)
      type_error("expected " + std::to_string(count) + " arguments but received " + std::to_string(info.Length()));
  }

  [[noreturn]] void type_error(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
  }

  // argument i as JavaScript would print it (for messages)
  std::string text(size_t i) const { return info_[i].ToString().Utf8Value(); }

  // A size: an integer in [lo, kMaxSize].
  int64_t size(size_t i, const char* name, int64_t lo) const {
    const double d = number_value(i, name);
    if (!(d >= (double)lo && d <= (double)kMaxSize && d == (double)(int64_t)d))
      range_error(std::string("expected ") + name + " to be an integer from " + std::to_string(lo) + " to " +
                  std::to_string(kMaxSize) + " but received " + text(i));
    return (int64_t)d;
  }

  float number(size_t i, const char* name) const {
    const double d = number_value(i, name);
    if (!std::isfinite(d)) range_error(std::string("expected ") + name + " to be a finite number but received " + text(i));
    return (float)d;
  }

  bool flag(size_t i, const char* name) const {
    bool b;
    if (napi_get_value_bool(env_, info_[i], &b) != napi_ok)
      type_error(std::string("expected ") + name + " to be a boolean but received " + describe(info_[i]));
    return b;
  }

  // argument i as a typed array of `type` (null allowed when nullable)
  // A typed array of the given type. snapshot: an array the binding checks values of (indices,
  // targets) and the kernel only reads; when its memory is a SharedArrayBuffer, another thread could
  // change it between the check and the read, so the call uses a private copy.
  View array(size_t i, const char* name, napi_typedarray_type type, const char* type_name, bool nullable,
             bool snapshot = false) {
    napi_value v = info_[i], buffer;
    napi_typedarray_type have;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env_, v, &have, &length, &data, &buffer, nullptr) != napi_ok || have != type) {
      if (nullable && info_[i].IsNull()) return View{nullptr, -1, 0};
      type_error(std::string("expected ") + name + " to be a " + type_name + (nullable ? " or null" : "") +
                 " but received " + describe(info_[i]));
    }
    // an empty array's data is never dereferenced, and a detached buffer has none
    if (length == 0) data = reinterpret_cast<void*>(alignof(double));
    const size_t bytes = length * element_bytes(have);
    bool plain = true;
    if (snapshot && length > 0 && napi_is_arraybuffer(env_, buffer, &plain) == napi_ok && !plain) {
      copies_.emplace_back(new uint8_t[bytes]);
      std::memcpy(copies_.back().get(), data, bytes);
      data = copies_.back().get();
    }
    return View{data, (int64_t)length, bytes};
  }

  // the array has `len` elements (at least, when at_least); null passes
  void length(const View& a, const char* name, int64_t len, bool at_least) const {
    if (a.null() || (at_least ? a.length >= len : a.length == len)) return;
    range_error(std::string("expected ") + name + (at_least ? " to have at least " : " to have length ") +
                std::to_string(len) + (at_least ? " elements" : "") + " but received " + std::to_string(a.length));
  }

  // an array the kernel writes must not share memory with one it reads (null passes)
  void no_overlap(const View& out, const char* out_name, const View& in, const char* in_name) const {
    if (out.null() || in.null() || !out.bytes || !in.bytes) return;
    const uint8_t *a = static_cast<const uint8_t*>(out.data), *b = static_cast<const uint8_t*>(in.data);
    if (a < b + in.bytes && b < a + out.bytes) range_error(std::string(out_name) + " must not overlap " + in_name);
  }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> copies_;  // the snapshots of shared arrays, for this call

  double number_value(size_t i, const char* name) const {
    double d;
    if (napi_get_value_double(env_, info_[i], &d) != napi_ok)
      type_error(std::string("expected ") + name + " to be a number but received " + describe(info_[i]));
    return d;
  }

  static size_t element_bytes(napi_typedarray_type type) {
    switch (type) {
      case napi_int8_array:
      case napi_uint8_array:
      case napi_uint8_clamped_array: return 1;
      case napi_int16_array:
      case napi_uint16_array: return 2;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array: return 8;
      default: return 4;
    }
  }

  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* fn_;  // a string literal
};

// ---- what the schema's expressions use (see lib/backend/expr.ts) ----------------------------------

// the elements a rows x cols matrix with leading dimension ld spans
int64_t extent(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : mul_sat(rows - 1, ld) + cols; }
// "[N, C]" when S = 1, else "[N, C, S]"
std::string dims(int64_t N, int64_t C, int64_t S) {
  return "[" + std::to_string(N) + ", " + std::to_string(C) + (S != 1 ? ", " + std::to_string(S) : "") + "]";
}
int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

// ---- Machine probes (for npm run bench; not part of the Backend interface) -------------------------

// fmaPeak(iters) -> FLOPs done by `iters` rounds of register-only FMAs on every pool thread
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info, "fmaPeak", 1);
  const int64_t iters = a.size(0, "iters", 1);
  return Napi::Number::New(info.Env(), kernels().fma_peak(iters));
}

// triad(a, b, c, s): a = b + s * c, over a's length
Napi::Value Triad(const Napi::CallbackInfo& info) {
  Args a(info, "triad", 4);
  const float s = a.number(3, "s");
  const View x = a.array(0, "a", napi_float32_array, "Float32Array", false);
  const View b = a.array(1, "b", napi_float32_array, "Float32Array", false);
  const View c = a.array(2, "c", napi_float32_array, "Float32Array", false);
  a.length(b, "b", x.length, false);
  a.length(c, "c", x.length, false);
  kernels().triad(static_cast<float*>(x.data), static_cast<const float*>(b.data), static_cast<const float*>(c.data), s,
                  x.length);
  return info.Env().Undefined();
}

// ---- Runtime configuration -----------------------------------------------------------------------

Napi::Object InfoObject(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", sg::isa_name(sg::active_isa()));
  o.Set("detectedIsa", sg::isa_name(sg::detected_isa()));
  Napi::Array isas = Napi::Array::New(env);
  for (int i = 0; i < sg::isa_count(); i++) isas.Set(i, sg::isa_name(sg::isa_at(i)));
  o.Set("isas", isas);
  o.Set("threads", sg::num_threads());
  return o;
}

// info() -> { isa, detectedIsa, isas (this build's, lowest first), threads }
Napi::Value Info(const Napi::CallbackInfo& info) {
  Args a(info, "info", 0);
  return InfoObject(info.Env());
}

// setIsa(name) -> the ISA now in effect (the cap, or less when the CPU lacks it)
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Args a(info, "setIsa", 1);
  sg::Isa cap;
  if (!info[0].IsString()) a.type_error("expected isa to be a string but received " + describe(info[0]));
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!sg::parse_isa(name.c_str(), &cap)) {
    std::string names;
    for (int i = 0; i < sg::isa_count(); i++) names += std::string(i ? ", " : "") + sg::isa_name(sg::isa_at(i));
    a.range_error("expected isa to be one of " + names + " but received '" + name + "'");
  }
  return Napi::String::New(info.Env(), sg::isa_name(sg::set_isa_cap(cap)));
}

// setThreads(n) -> the thread count now in effect
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setThreads", 1);
  const int64_t n = a.size(0, "threads", 1);
  if (n > sg::kMaxThreads) a.range_error("expected threads to be at most " + std::to_string(sg::kMaxThreads) + " but received " + std::to_string(n));
  return Napi::Number::New(info.Env(), sg::set_num_threads((int)n));
}

// Kernels allocate only on the calling thread (packing buffers, folded BN scales); a failed
// allocation becomes a JavaScript RangeError instead of std::terminate.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(), "stablegrad: out of memory");
  }
}

#define SG_EXPORT(name, f) exports.Set(name, Napi::Function::New(env, Guarded<f>, name))

// the kernels' wrappers and register_kernels, written from the schema
#include "binding.gen.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  register_kernels(env, exports);  // binding.gen.h
  SG_EXPORT("info", Info);
  SG_EXPORT("setIsa", SetIsa);
  SG_EXPORT("fmaPeak", FmaPeak);
  SG_EXPORT("triad", Triad);
  SG_EXPORT("setThreads", SetThreads);
  sg::register_memory(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(stablegrad, Init)
