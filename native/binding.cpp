// The N-API boundary: one wrapper per kernel, one flat registration block at the bottom.
//
// Each wrapper checks the argument count, every argument's type, every size, and every array's
// length against the sizes it was given, then calls one kernel on the arrays' memory (zero copy).
// Wrong kinds throw TypeError, wrong sizes RangeError, and the messages are the same, word for
// word, as lib/backend/validate.ts gives for the TypeScript fallback (a test holds them equal):
//   sgemm: expected A to be a Float32Array but received number
//   sgemm: expected A to have at least 12 elements but received 10
// Nothing JavaScript can pass reaches a kernel with an array too short for it.
#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <new>
#include <string>

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
int64_t mul_sat(int64_t a, int64_t b, int64_t c) { return mul_sat(mul_sat(a, b), c); }
int64_t mul_sat(int64_t a, int64_t b, int64_t c, int64_t d) { return mul_sat(mul_sat(a, b, c), d); }

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

// Argument access for one call of one function; every accessor throws on a bad argument. Each
// reads its argument with one N-API call, which also tells a wrong kind (napi_get_value_double
// fails on anything but a number, napi_get_typedarray_info on anything but a typed array, and
// gives the type, length and data pointer at once); node-addon-api's accessors took one call per
// property (five for a Float32Array's pointer), and a 4 x 4 x 4 sgemm call cost 0.87 us (0.44 now),
// more than its kernel. The messages are built only on the error path.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn, size_t count) : info_(info), env_(info.Env()), fn_(fn) {
    if (count > kMaxArgs) range_error("takes more arguments than Args holds");  // a binding's own mistake
    if (info.Length() != count)
      type_error("expected " + std::to_string(count) + " arguments but received " + std::to_string(info.Length()));
  }

  [[noreturn]] void type_error(const std::string& msg) const {
    throw Napi::TypeError::New(env_, std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(env_, std::string(fn_) + ": " + msg);
  }

  // A size: an integer in [lo, kMaxSize].
  int64_t size(size_t i, const char* name, int64_t lo = 0) const {
    const double d = number_value(i, name);
    if (!(d >= (double)lo && d <= (double)kMaxSize && d == (double)(int64_t)d))
      range_error(std::string("expected ") + name + " to be an integer from " + std::to_string(lo) + " to " +
                  std::to_string(kMaxSize) + " but received " + info_[i].ToString().Utf8Value());
    return (int64_t)d;
  }

  float number(size_t i, const char* name) const {
    const double d = number_value(i, name);
    if (!std::isfinite(d))
      range_error(std::string("expected ") + name + " to be a finite number but received " +
                  info_[i].ToString().Utf8Value());
    return (float)d;
  }

  bool flag(size_t i, const char* name) const {
    bool b;
    if (napi_get_value_bool(env_, info_[i], &b) != napi_ok)
      type_error(std::string("expected ") + name + " to be a boolean but received " + describe(info_[i]));
    return b;
  }

  // The length of a Float32Array argument (which sets n for elementwise kernels).
  int64_t length(size_t i, const char* name) { return view(i, name, napi_float32_array, "Float32Array", false).length; }

  // A Float32Array of exactly `len` elements (at least `len` when at_least).
  float* f32(size_t i, const char* name, int64_t len, bool at_least = false) {
    return static_cast<float*>(typed(i, name, napi_float32_array, "Float32Array", len, at_least, false));
  }
  float* f32_or_null(size_t i, const char* name, int64_t len) {
    return static_cast<float*>(typed(i, name, napi_float32_array, "Float32Array", len, false, true));
  }
  int32_t* i32(size_t i, const char* name, int64_t len) {
    return static_cast<int32_t*>(typed(i, name, napi_int32_array, "Int32Array", len, false, false));
  }
  // A Uint8Array of exactly `len` elements; u8_length: the length of one of any length.
  const uint8_t* u8(size_t i, const char* name, int64_t len) {
    return static_cast<const uint8_t*>(typed(i, name, napi_uint8_array, "Uint8Array", len, false, false));
  }
  int64_t u8_length(size_t i, const char* name) { return view(i, name, napi_uint8_array, "Uint8Array", false).length; }

  // Outputs that the kernel writes while it reads `b` must not share memory with it (both are
  // typed arrays already checked, so their spans are known).
  void no_overlap(size_t out, const char* out_name, size_t in, const char* in_name) const {
    const Span a = seen_[out], b = seen_[in];
    if (a.bytes && b.bytes && a.data < b.data + b.bytes && b.data < a.data + a.bytes)
      range_error(std::string(out_name) + " must not overlap " + in_name);
  }

 private:
  struct View {
    void* data;  // the first element (the buffer's data plus the array's byte offset)
    int64_t length;
  };
  struct Span {
    const uint8_t* data = nullptr;
    size_t bytes = 0;
  };
  static constexpr size_t kMaxArgs = 16;

  double number_value(size_t i, const char* name) const {
    double d;
    if (napi_get_value_double(env_, info_[i], &d) != napi_ok)
      type_error(std::string("expected ") + name + " to be a number but received " + describe(info_[i]));
    return d;
  }

  // argument i as a typed array of `type` (data null for null when nullable)
  View view(size_t i, const char* name, napi_typedarray_type type, const char* type_name, bool nullable) const {
    napi_value v = info_[i];
    napi_typedarray_type have;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env_, v, &have, &length, &data, nullptr, nullptr) != napi_ok || have != type) {
      if (nullable && info_[i].IsNull()) return View{nullptr, -1};
      type_error(std::string("expected ") + name + " to be a " + type_name + (nullable ? " or null" : "") +
                 " but received " + describe(info_[i]));
    }
    seen_[i] = Span{static_cast<const uint8_t*>(data), length * element_bytes(have)};
    return View{data, (int64_t)length};
  }

  void* typed(size_t i, const char* name, napi_typedarray_type type, const char* type_name, int64_t len, bool at_least,
              bool nullable) {
    const View a = view(i, name, type, type_name, nullable);
    if (a.length < 0) return nullptr;  // null, allowed
    if (at_least ? a.length < len : a.length != len)
      range_error(std::string("expected ") + name + (at_least ? " to have at least " : " to have length ") +
                  std::to_string(len) + (at_least ? " elements" : "") + " but received " + std::to_string(a.length));
    if (a.length == 0) return reinterpret_cast<void*>(alignof(float));  // never dereferenced; detached buffers have no data
    return a.data;
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
  mutable Span seen_[kMaxArgs];  // each typed array argument's memory, as view() found it (for no_overlap)
};

// ---- GEMM ----------------------------------------------------------------------------------------

// The arguments both GEMM bindings share: C, A, B at 0, 1, 2, then M, N, K, transA, transB, alpha
// from `at` on, and lda, ldb, ldc from `ld_at`. Checks the leading dimensions, the lengths and that
// C overlaps neither operand; beta is read by the caller.
struct GemmArgs {
  float* C;
  const float *A, *B;
  int64_t M, N, K, lda, ldb, ldc;
  bool ta, tb;
  float alpha;
  GemmArgs(Args& a, size_t at, size_t ld_at) {
    M = a.size(at, "M"), N = a.size(at + 1, "N"), K = a.size(at + 2, "K");
    ta = a.flag(at + 3, "transA"), tb = a.flag(at + 4, "transB");
    alpha = a.number(at + 5, "alpha");
    lda = a.size(ld_at, "lda"), ldb = a.size(ld_at + 1, "ldb"), ldc = a.size(ld_at + 2, "ldc");
    // stored shapes: A is (K, M) when transposed, else (M, K); B is (N, K) when transposed, else (K, N)
    auto check_ld = [&](const char* name, int64_t ld, int64_t cols) {
      const int64_t need = cols > 1 ? cols : 1;
      if (ld < need) a.range_error(std::string("expected ") + name + " >= " + std::to_string(need) + " but received " + std::to_string(ld));
    };
    auto extent = [](int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; };
    const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    check_ld("lda", lda, a_cols);
    check_ld("ldb", ldb, b_cols);
    check_ld("ldc", ldc, N);
    C = a.f32(0, "C", extent(M, N, ldc), true);
    A = a.f32(1, "A", extent(a_rows, a_cols, lda), true);
    B = a.f32(2, "B", extent(b_rows, b_cols, ldb), true);
    a.no_overlap(0, "C", 1, "A");
    a.no_overlap(0, "C", 2, "B");
  }
};

// sgemm(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc)
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Args a(info, "sgemm", 13);
  const float beta = a.number(9, "beta");
  const GemmArgs g(a, 3, 10);
  kernels().sgemm(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, beta, g.lda, g.ldb, g.ldc, nullptr);
  return info.Env().Undefined();
}

// sgemmSumSquares(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc): sgemm, returning
// the sum of the squares of C's M x N values
Napi::Value SgemmSumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sgemmSumSquares", 13);
  const float beta = a.number(9, "beta");
  const GemmArgs g(a, 3, 10);
  const double sq =
      kernels().sgemm_sum_squares(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, beta, g.lda, g.ldb, g.ldc);
  return Napi::Number::New(info.Env(), sq);
}

// sgemmBias(C, A, B, bias, M, N, K, transA, transB, alpha, lda, ldb, ldc): C = alpha * op(A) . op(B)
// + bias on every row (a linear layer's forward); C is only written
Napi::Value SgemmBias(const Napi::CallbackInfo& info) {
  Args a(info, "sgemmBias", 13);
  const GemmArgs g(a, 4, 10);
  const float* bias = a.f32(3, "bias", g.N);
  a.no_overlap(0, "C", 3, "bias");
  kernels().sgemm(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, 0.0f, g.lda, g.ldb, g.ldc, bias);
  return info.Env().Undefined();
}

// ---- BatchNorm -----------------------------------------------------------------------------------

void check_values_per_channel(const Args& a, int64_t N, int64_t C, int64_t S) {
  if (N * S > 1) return;
  std::string shape = "[" + std::to_string(N) + ", " + std::to_string(C) + (S > 1 ? ", " + std::to_string(S) : "") + "]";
  a.range_error("Expected more than 1 value per channel when training, got input size " + shape);
}

// batchnormForwardTrain(y, saveMean, saveInvstd, runningMean, runningVar, x, weight, bias, N, C, S, eps, momentum, relu)
Napi::Value BatchnormForwardTrain(const Napi::CallbackInfo& info) {
  Args a(info, "batchnormForwardTrain", 14);
  const int64_t N = a.size(8, "N"), C = a.size(9, "C"), S = a.size(10, "S");
  const float eps = a.number(11, "eps"), momentum = a.number(12, "momentum");
  const bool relu = a.flag(13, "relu");
  const int64_t n = mul_sat(N, C, S);
  float* y = a.f32(0, "y", n);
  float* mean = a.f32(1, "saveMean", C);
  float* invstd = a.f32(2, "saveInvstd", C);
  float* rm = a.f32_or_null(3, "runningMean", C);
  float* rv = a.f32_or_null(4, "runningVar", C);
  const float* x = a.f32(5, "x", n);
  const float* w = a.f32_or_null(6, "weight", C);
  const float* b = a.f32_or_null(7, "bias", C);
  check_values_per_channel(a, N, C, S);
  kernels().batchnorm_forward_train(y, mean, invstd, rm, rv, x, w, b, N, C, S, eps, momentum, relu);
  return info.Env().Undefined();
}

// batchnormForwardEval(y, x, runningMean, runningVar, weight, bias, N, C, S, eps, relu)
Napi::Value BatchnormForwardEval(const Napi::CallbackInfo& info) {
  Args a(info, "batchnormForwardEval", 11);
  const int64_t N = a.size(6, "N"), C = a.size(7, "C"), S = a.size(8, "S");
  const float eps = a.number(9, "eps");
  const bool relu = a.flag(10, "relu");
  const int64_t n = mul_sat(N, C, S);
  float* y = a.f32(0, "y", n);
  const float* x = a.f32(1, "x", n);
  const float* rm = a.f32(2, "runningMean", C);
  const float* rv = a.f32(3, "runningVar", C);
  const float* w = a.f32_or_null(4, "weight", C);
  const float* b = a.f32_or_null(5, "bias", C);
  kernels().batchnorm_forward_eval(y, x, rm, rv, w, b, N, C, S, eps, relu);
  return info.Env().Undefined();
}

// batchnormBackward(dx, dweight, dbias, dy, x, mean, invstd, weight, y, N, C, S, train)
Napi::Value BatchnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "batchnormBackward", 13);
  const int64_t N = a.size(9, "N"), C = a.size(10, "C"), S = a.size(11, "S");
  const bool train = a.flag(12, "train");
  const int64_t n = mul_sat(N, C, S);
  float* dx = a.f32_or_null(0, "dx", n);
  float* dw = a.f32_or_null(1, "dweight", C);
  float* db = a.f32_or_null(2, "dbias", C);
  const float* dy = a.f32(3, "dy", n);
  const float* x = a.f32(4, "x", n);
  const float* mean = a.f32(5, "mean", C);
  const float* invstd = a.f32(6, "invstd", C);
  const float* w = a.f32_or_null(7, "weight", C);
  const float* y = a.f32_or_null(8, "y", n);
  if (train) check_values_per_channel(a, N, C, S);
  kernels().batchnorm_backward(dx, dw, db, dy, x, mean, invstd, w, y, N, C, S, train);
  return info.Env().Undefined();
}

// ---- Elementwise and reductions ------------------------------------------------------------------

template <void (*const sg::Kernels::*Fn)(float*, const float*, const float*, int64_t)>
Napi::Value Binary(const Napi::CallbackInfo& info, const char* fn, const char* out, const char* in1, const char* in2) {
  Args a(info, fn, 3);
  const int64_t n = a.length(0, out);
  float* o = a.f32(0, out, n);
  const float* p = a.f32(1, in1, n);
  const float* q = a.f32(2, in2, n);
  (kernels().*Fn)(o, p, q, n);
  return info.Env().Undefined();
}

template <void (*const sg::Kernels::*Fn)(float*, const float*, int64_t)>
Napi::Value Unary(const Napi::CallbackInfo& info, const char* fn) {
  Args a(info, fn, 2);
  const int64_t n = a.length(0, "out");
  float* o = a.f32(0, "out", n);
  const float* x = a.f32(1, "x", n);
  (kernels().*Fn)(o, x, n);
  return info.Env().Undefined();
}

template <void (*const sg::Kernels::*Fn)(float*, const float*, float, int64_t)>
Napi::Value UnaryScalar(const Napi::CallbackInfo& info, const char* fn, const char* out, const char* scalar) {
  Args a(info, fn, 3);
  const int64_t n = a.length(0, out);
  float* o = a.f32(0, out, n);
  const float* x = a.f32(1, "x", n);
  const float s = a.number(2, scalar);
  (kernels().*Fn)(o, x, s, n);
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& i) { return Binary<&sg::Kernels::add>(i, "add", "out", "a", "b"); }
Napi::Value Mul(const Napi::CallbackInfo& i) { return Binary<&sg::Kernels::mul>(i, "mul", "out", "a", "b"); }
Napi::Value Scale(const Napi::CallbackInfo& i) { return UnaryScalar<&sg::Kernels::scale>(i, "scale", "out", "alpha"); }
Napi::Value Axpy(const Napi::CallbackInfo& i) { return UnaryScalar<&sg::Kernels::axpy>(i, "axpy", "y", "alpha"); }
Napi::Value Relu(const Napi::CallbackInfo& i) { return Unary<&sg::Kernels::relu>(i, "relu"); }
Napi::Value ReluBackward(const Napi::CallbackInfo& i) { return Binary<&sg::Kernels::relu_backward>(i, "reluBackward", "dx", "dy", "x"); }
Napi::Value Sigmoid(const Napi::CallbackInfo& i) { return Unary<&sg::Kernels::sigmoid>(i, "sigmoid"); }
Napi::Value SigmoidBackward(const Napi::CallbackInfo& i) { return Binary<&sg::Kernels::sigmoid_backward>(i, "sigmoidBackward", "dx", "dy", "y"); }
Napi::Value Tanh(const Napi::CallbackInfo& i) { return Unary<&sg::Kernels::tanh>(i, "tanh"); }
Napi::Value TanhBackward(const Napi::CallbackInfo& i) { return Binary<&sg::Kernels::tanh_backward>(i, "tanhBackward", "dx", "dy", "y"); }
Napi::Value LeakyRelu(const Napi::CallbackInfo& i) { return UnaryScalar<&sg::Kernels::leaky_relu>(i, "leakyRelu", "out", "slope"); }

// fn(out, a, b, scalar) over n = out's length
template <void (*const sg::Kernels::*Fn)(float*, const float*, const float*, float, int64_t)>
Napi::Value BinaryScalar(const Napi::CallbackInfo& info, const char* fn, const char* out, const char* a_name,
                         const char* b_name, const char* scalar) {
  Args a(info, fn, 4);
  const int64_t n = a.length(0, out);
  float* o = a.f32(0, out, n);
  const float* x = a.f32(1, a_name, n);
  const float* y = a.f32(2, b_name, n);
  const float s = a.number(3, scalar);
  (kernels().*Fn)(o, x, y, s, n);
  return info.Env().Undefined();
}
// leakyReluBackward(dx, dy, x, slope)
Napi::Value LeakyReluBackward(const Napi::CallbackInfo& i) {
  return BinaryScalar<&sg::Kernels::leaky_relu_backward>(i, "leakyReluBackward", "dx", "dy", "x", "slope");
}

template <double (*const sg::Kernels::*Fn)(const float*, int64_t)>
Napi::Value Reduction(const Napi::CallbackInfo& info, const char* fn) {
  Args a(info, fn, 1);
  const int64_t n = a.length(0, "x");
  return Napi::Number::New(info.Env(), (kernels().*Fn)(a.f32(0, "x", n), n));
}
Napi::Value Sum(const Napi::CallbackInfo& i) { return Reduction<&sg::Kernels::sum>(i, "sum"); }
Napi::Value SumSquares(const Napi::CallbackInfo& i) { return Reduction<&sg::Kernels::sum_squares>(i, "sumSquares"); }

// maxRows(max, argmax, x, R, K)
Napi::Value MaxRows(const Napi::CallbackInfo& info) {
  Args a(info, "maxRows", 5);
  const int64_t R = a.size(3, "R"), K = a.size(4, "K", 1);
  float* m = a.f32(0, "max", R);
  int32_t* idx = a.i32(1, "argmax", R);
  const float* x = a.f32(2, "x", mul_sat(R, K));
  kernels().max_rows(m, idx, x, R, K);
  return info.Env().Undefined();
}

// each of indices (R) in [0, rows)
void check_row_indices(const Args& a, const int32_t* idx, int64_t R, int64_t rows) {
  for (int64_t r = 0; r < R; r++)
    if (idx[r] < 0 || idx[r] >= rows)
      a.range_error("indices[" + std::to_string(r) + "] = " + std::to_string(idx[r]) + " is out of range [0, " +
                    std::to_string(rows) + ") (the rows of src)");
}

// gatherRows(out, src, indices, R, D)
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Args a(info, "gatherRows", 5);
  const int64_t R = a.size(3, "R"), D = a.size(4, "D", 1);
  float* out = a.f32(0, "out", mul_sat(R, D));
  const int64_t n = a.length(1, "src");
  const float* src = a.f32(1, "src", n);
  const int32_t* idx = a.i32(2, "indices", R);
  a.no_overlap(0, "out", 1, "src");
  check_row_indices(a, idx, R, n / D);
  kernels().gather_rows(out, src, idx, R, D);
  return info.Env().Undefined();
}

// gatherBytes(out, src, indices, R, D, offset, scale)
Napi::Value GatherBytes(const Napi::CallbackInfo& info) {
  Args a(info, "gatherBytes", 7);
  const int64_t R = a.size(3, "R"), D = a.size(4, "D", 1);
  float* out = a.f32(0, "out", mul_sat(R, D));
  const int64_t n = a.u8_length(1, "src");
  const uint8_t* src = a.u8(1, "src", n);
  const int32_t* idx = a.i32(2, "indices", R);
  a.f32(5, "offset", 1, true);
  const int64_t channels = a.length(5, "offset");
  const float* offset = a.f32(5, "offset", channels);
  const float* scale = a.f32(6, "scale", channels);
  if (D % channels != 0)
    a.range_error("expected D to be a multiple of the channels (the length of offset) but received D = " +
                  std::to_string(D) + " for " + std::to_string(channels) + " channels");
  a.no_overlap(0, "out", 1, "src");
  check_row_indices(a, idx, R, n / D);
  kernels().gather_bytes(out, src, idx, R, D, offset, scale, channels);
  return info.Env().Undefined();
}

// ---- Softmax cross-entropy -----------------------------------------------------------------------

void check_targets(const Args& a, const int32_t* t, int64_t R, int64_t K) {
  for (int64_t r = 0; r < R; r++)
    if (t[r] < 0 || t[r] >= K)
      a.range_error("targets[" + std::to_string(r) + "] = " + std::to_string(t[r]) + " is out of range [0, " +
                    std::to_string(K) + ")");
}

// softmaxCrossEntropy(losses, logits, targets, R, K, labelSmoothing)
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxCrossEntropy", 6);
  const int64_t R = a.size(3, "R"), K = a.size(4, "K", 1);
  const float ls = a.number(5, "labelSmoothing");
  float* losses = a.f32(0, "losses", R);
  const float* logits = a.f32(1, "logits", mul_sat(R, K));
  const int32_t* t = a.i32(2, "targets", R);
  if (ls < 0.0f || ls > 1.0f) a.range_error("expected labelSmoothing to be in [0, 1] but received " + info[5].ToString().Utf8Value());
  check_targets(a, t, R, K);
  kernels().softmax_xent_forward(losses, logits, t, R, K, ls);
  return info.Env().Undefined();
}

// softmaxCrossEntropyBackward(dlogits, logits, targets, dlosses, R, K, labelSmoothing)
Napi::Value SoftmaxCrossEntropyBackward(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxCrossEntropyBackward", 7);
  const int64_t R = a.size(4, "R"), K = a.size(5, "K", 1);
  const float ls = a.number(6, "labelSmoothing");
  float* dlogits = a.f32(0, "dlogits", mul_sat(R, K));
  const float* logits = a.f32(1, "logits", mul_sat(R, K));
  const int32_t* t = a.i32(2, "targets", R);
  const float* dlosses = a.f32(3, "dlosses", R);
  if (ls < 0.0f || ls > 1.0f) a.range_error("expected labelSmoothing to be in [0, 1] but received " + info[6].ToString().Utf8Value());
  check_targets(a, t, R, K);
  kernels().softmax_xent_backward(dlogits, logits, t, dlosses, R, K, ls);
  return info.Env().Undefined();
}

// ---- Optimizers ----------------------------------------------------------------------------------

// sgdStep(param, momentumBuffer, grad, lr, momentum, dampening, weightDecay, nesterov, firstStep)
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  Args a(info, "sgdStep", 9);
  const int64_t n = a.length(0, "param");
  float* p = a.f32(0, "param", n);
  float* buf = a.f32_or_null(1, "momentumBuffer", n);
  const float* g = a.f32(2, "grad", n);
  const float lr = a.number(3, "lr"), momentum = a.number(4, "momentum"), damp = a.number(5, "dampening"),
              wd = a.number(6, "weightDecay");
  const bool nesterov = a.flag(7, "nesterov"), first = a.flag(8, "firstStep");
  if (momentum != 0.0f && !buf) a.type_error("expected momentumBuffer to be a Float32Array when momentum != 0 but received null");
  kernels().sgd_step(p, buf, g, n, lr, momentum, damp, wd, nesterov, first);
  return info.Env().Undefined();
}

// adamStep(param, expAvg, expAvgSq, grad, lr, beta1, beta2, eps, weightDecay, step, decoupled)
Napi::Value AdamStep(const Napi::CallbackInfo& info) {
  Args a(info, "adamStep", 11);
  const int64_t n = a.length(0, "param");
  float* p = a.f32(0, "param", n);
  float* m = a.f32(1, "expAvg", n);
  float* v = a.f32(2, "expAvgSq", n);
  const float* g = a.f32(3, "grad", n);
  const float lr = a.number(4, "lr"), b1 = a.number(5, "beta1"), b2 = a.number(6, "beta2"), eps = a.number(7, "eps"),
              wd = a.number(8, "weightDecay");
  const int64_t step = a.size(9, "step", 1);
  const bool decoupled = a.flag(10, "decoupled");
  kernels().adam_step(p, m, v, g, n, lr, b1, b2, eps, wd, step, decoupled);
  return info.Env().Undefined();
}

// ---- Convolution helpers -------------------------------------------------------------------------

struct ConvDims {
  int64_t N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
};

// reads N, C, H, W, KH, KW, SH, SW, PH, PW from arguments first..first+9
ConvDims conv_dims(const Args& a, size_t first) {
  ConvDims d;
  d.N = a.size(first, "N");
  d.C = a.size(first + 1, "C");
  d.H = a.size(first + 2, "H");
  d.W = a.size(first + 3, "W");
  d.KH = a.size(first + 4, "KH", 1);
  d.KW = a.size(first + 5, "KW", 1);
  d.SH = a.size(first + 6, "SH", 1);
  d.SW = a.size(first + 7, "SW", 1);
  d.PH = a.size(first + 8, "PH");
  d.PW = a.size(first + 9, "PW");
  if (d.H + 2 * d.PH < d.KH || d.W + 2 * d.PW < d.KW)
    a.range_error("kernel " + std::to_string(d.KH) + "x" + std::to_string(d.KW) + " does not fit input " +
                  std::to_string(d.H) + "x" + std::to_string(d.W) + " with padding " + std::to_string(d.PH) + "x" +
                  std::to_string(d.PW));
  d.OH = sg::conv_out_size(d.H, d.KH, d.SH, d.PH);
  d.OW = sg::conv_out_size(d.W, d.KW, d.SW, d.PW);
  return d;
}

// im2col(col, x, N, C, H, W, KH, KW, SH, SW, PH, PW)
Napi::Value Im2col(const Napi::CallbackInfo& info) {
  Args a(info, "im2col", 12);
  const ConvDims d = conv_dims(a, 2);
  float* col = a.f32(0, "col", mul_sat(d.N * d.C, d.KH * d.KW, d.OH, d.OW));
  const float* x = a.f32(1, "x", mul_sat(d.N, d.C, d.H, d.W));
  a.no_overlap(0, "col", 1, "x");
  kernels().im2col(col, x, d.N, d.C, d.H, d.W, d.KH, d.KW, d.SH, d.SW, d.PH, d.PW);
  return info.Env().Undefined();
}

// convOutput(y, out, bias, N, OC, P)
Napi::Value ConvOutput(const Napi::CallbackInfo& info) {
  Args a(info, "convOutput", 6);
  const int64_t N = a.size(3, "N"), OC = a.size(4, "OC"), P = a.size(5, "P");
  float* y = a.f32(0, "y", mul_sat(N, OC, P));
  const float* out = a.f32(1, "out", mul_sat(N, OC, P));
  const float* bias = a.f32_or_null(2, "bias", OC);
  a.no_overlap(0, "y", 1, "out");
  if (bias) a.no_overlap(0, "y", 2, "bias");
  kernels().conv_output(y, out, bias, N, OC, P);
  return info.Env().Undefined();
}

// convOutputBackward(gT, dbias, g, N, OC, P)
Napi::Value ConvOutputBackward(const Napi::CallbackInfo& info) {
  Args a(info, "convOutputBackward", 6);
  const int64_t N = a.size(3, "N"), OC = a.size(4, "OC"), P = a.size(5, "P");
  float* gT = a.f32(0, "gT", mul_sat(N, OC, P));
  float* dbias = a.f32_or_null(1, "dbias", OC);
  const float* g = a.f32(2, "g", mul_sat(N, OC, P));
  a.no_overlap(0, "gT", 2, "g");
  if (dbias) {
    a.no_overlap(1, "dbias", 2, "g");
    a.no_overlap(1, "dbias", 0, "gT");
  }
  kernels().conv_output_backward(gT, dbias, g, N, OC, P);
  return info.Env().Undefined();
}

// col2im(dx, col, N, C, H, W, KH, KW, SH, SW, PH, PW)
Napi::Value Col2im(const Napi::CallbackInfo& info) {
  Args a(info, "col2im", 12);
  const ConvDims d = conv_dims(a, 2);
  float* dx = a.f32(0, "dx", mul_sat(d.N, d.C, d.H, d.W));
  const float* col = a.f32(1, "col", mul_sat(d.N * d.C, d.KH * d.KW, d.OH, d.OW));
  a.no_overlap(0, "dx", 1, "col");
  kernels().col2im(dx, col, d.N, d.C, d.H, d.W, d.KH, d.KW, d.SH, d.SW, d.PH, d.PW);
  return info.Env().Undefined();
}

// maxPool2d(y, indices, x, N, C, H, W, KH, KW, SH, SW, PH, PW)
Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {
  Args a(info, "maxPool2d", 13);
  const ConvDims d = conv_dims(a, 3);
  if (2 * d.PH > d.KH || 2 * d.PW > d.KW)
    a.range_error("expected padding at most half the kernel but received padding " + std::to_string(d.PH) + "x" +
                  std::to_string(d.PW) + " for kernel " + std::to_string(d.KH) + "x" + std::to_string(d.KW));
  const int64_t out = mul_sat(d.N, d.C, d.OH, d.OW);
  float* y = a.f32(0, "y", out);
  int32_t* idx = a.i32(1, "indices", out);
  const float* x = a.f32(2, "x", mul_sat(d.N, d.C, d.H, d.W));
  a.no_overlap(0, "y", 2, "x");
  a.no_overlap(1, "indices", 2, "x");
  kernels().max_pool2d(y, idx, x, d.N, d.C, d.H, d.W, d.KH, d.KW, d.SH, d.SW, d.PH, d.PW);
  return info.Env().Undefined();
}

// maxPool2dBackward(dx, dy, indices, N, C, H, W, OH, OW)
Napi::Value MaxPool2dBackward(const Napi::CallbackInfo& info) {
  Args a(info, "maxPool2dBackward", 9);
  const int64_t N = a.size(3, "N"), C = a.size(4, "C"), H = a.size(5, "H"), W = a.size(6, "W"), OH = a.size(7, "OH"),
                OW = a.size(8, "OW");
  float* dx = a.f32(0, "dx", mul_sat(N, C, H, W));
  const float* dy = a.f32(1, "dy", mul_sat(N, C, OH, OW));
  const int32_t* idx = a.i32(2, "indices", mul_sat(N, C, OH, OW));
  a.no_overlap(0, "dx", 1, "dy");
  a.no_overlap(0, "dx", 2, "indices");
  const int64_t plane = H * W, count = N * C * OH * OW;
  for (int64_t i = 0; i < count; i++)
    if (idx[i] < 0 || idx[i] >= plane)
      a.range_error("indices[" + std::to_string(i) + "] = " + std::to_string(idx[i]) + " is out of range [0, " +
                    std::to_string(plane) + ")");
  kernels().max_pool2d_backward(dx, dy, idx, N, C, H, W, OH, OW);
  return info.Env().Undefined();
}

// ---- Machine probes (for npm run bench; not part of the Backend interface) -------------------------

// fmaPeak(iters) -> FLOPs done by `iters` rounds of register-only FMAs on every pool thread
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info, "fmaPeak", 1);
  const int64_t iters = a.size(0, "iters", 1);
  return Napi::Number::New(info.Env(), kernels().fma_peak(iters));
}

// triad(a, b, c, s): a = b + s * c
Napi::Value Triad(const Napi::CallbackInfo& i) {
  return BinaryScalar<&sg::Kernels::triad>(i, "triad", "a", "b", "c", "s");
}

// ---- Runtime configuration -----------------------------------------------------------------------

Napi::Object InfoObject(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", sg::isa_name(sg::active_isa()));
  o.Set("detectedIsa", sg::isa_name(sg::detected_isa()));
  o.Set("threads", sg::num_threads());
  return o;
}

// info() -> { isa, detectedIsa, threads }
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
  if (!sg::parse_isa(name.c_str(), &cap))
    a.range_error("expected isa to be one of scalar, avx2, avx512 but received '" + name + "'");
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  SG_EXPORT("sgemm", Sgemm);
  SG_EXPORT("sgemmSumSquares", SgemmSumSquares);
  SG_EXPORT("sgemmBias", SgemmBias);
  SG_EXPORT("batchnormForwardTrain", BatchnormForwardTrain);
  SG_EXPORT("batchnormForwardEval", BatchnormForwardEval);
  SG_EXPORT("batchnormBackward", BatchnormBackward);
  SG_EXPORT("add", Add);
  SG_EXPORT("mul", Mul);
  SG_EXPORT("scale", Scale);
  SG_EXPORT("axpy", Axpy);
  SG_EXPORT("relu", Relu);
  SG_EXPORT("reluBackward", ReluBackward);
  SG_EXPORT("leakyRelu", LeakyRelu);
  SG_EXPORT("leakyReluBackward", LeakyReluBackward);
  SG_EXPORT("sigmoid", Sigmoid);
  SG_EXPORT("sigmoidBackward", SigmoidBackward);
  SG_EXPORT("tanh", Tanh);
  SG_EXPORT("tanhBackward", TanhBackward);
  SG_EXPORT("sum", Sum);
  SG_EXPORT("sumSquares", SumSquares);
  SG_EXPORT("maxRows", MaxRows);
  SG_EXPORT("gatherRows", GatherRows);
  SG_EXPORT("gatherBytes", GatherBytes);
  SG_EXPORT("softmaxCrossEntropy", SoftmaxCrossEntropy);
  SG_EXPORT("softmaxCrossEntropyBackward", SoftmaxCrossEntropyBackward);
  SG_EXPORT("sgdStep", SgdStep);
  SG_EXPORT("adamStep", AdamStep);
  SG_EXPORT("im2col", Im2col);
  SG_EXPORT("col2im", Col2im);
  SG_EXPORT("convOutput", ConvOutput);
  SG_EXPORT("convOutputBackward", ConvOutputBackward);
  SG_EXPORT("maxPool2d", MaxPool2d);
  SG_EXPORT("maxPool2dBackward", MaxPool2dBackward);
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
