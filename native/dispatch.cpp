#include "dispatch.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace sg {
namespace {

// This build's ISAs, lowest first: the portable path, then each faster one the CPU may have.
// A cap is a position in this list.
#if defined(__x86_64__) && defined(SG_HAVE_AVX512)
constexpr Isa kIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512};
#elif defined(__aarch64__) && defined(SG_HAVE_NEON)
constexpr Isa kIsas[] = {Isa::scalar, Isa::neon};
#else
constexpr Isa kIsas[] = {Isa::scalar};
#endif
constexpr int kIsaCount = (int)(sizeof kIsas / sizeof kIsas[0]);

int rank(Isa isa) {
  for (int i = 0; i < kIsaCount; i++)
    if (kIsas[i] == isa) return i;
  return 0;
}

#if defined(__x86_64__) || defined(__i386__)
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}

// The CPU must report the instructions and the OS must save the registers they use (XCR0).
Isa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::scalar;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx || !fma) return Isa::scalar;
  const unsigned long long xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return Isa::scalar;  // XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::scalar;
  const bool avx2 = b & (1u << 5);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));  // F DQ BW VL
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // plus opmask, ZMM0-15 upper halves, ZMM16-31
#if defined(SG_HAVE_AVX512)
  if (avx512 && zmm_state && avx2) return Isa::avx512;
#endif
#if defined(SG_HAVE_AVX2)
  if (avx2) return Isa::avx2;
#endif
  (void)avx512;
  (void)zmm_state;
  (void)avx2;
  return Isa::scalar;
}
#elif defined(__aarch64__) && defined(SG_HAVE_NEON)
Isa detect() { return Isa::neon; }  // Advanced SIMD is part of every ARMv8-A CPU
#else
Isa detect() { return Isa::scalar; }
#endif

const Kernels& table_for(Isa isa) {
#if defined(SG_HAVE_AVX512)
  if (isa == Isa::avx512) return avx512::table;
#endif
#if defined(SG_HAVE_AVX2)
  if (isa == Isa::avx2) return avx2::table;
#endif
#if defined(SG_HAVE_NEON)
  if (isa == Isa::neon) return neon::table;
#endif
  (void)isa;
  return scalar::table;
}

const Isa g_detected = detect();
Isa g_active = g_detected;
const Kernels* g_kernels = &table_for(g_detected);

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::neon: return "neon";
    default: return "scalar";
  }
}

int isa_count() { return kIsaCount; }
Isa isa_at(int i) { return kIsas[i]; }

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : kIsas)
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  return false;
}

Isa detected_isa() { return g_detected; }
Isa active_isa() { return g_active; }

Isa set_isa_cap(Isa cap) {
  g_active = rank(cap) < rank(g_detected) ? cap : g_detected;
  g_kernels = &table_for(g_active);
  return g_active;
}

const Kernels& kernels() { return *g_kernels; }

}  // namespace sg
