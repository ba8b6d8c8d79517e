// This ISA's kernel table (see kernels.h); compiled once per ISA like every kernel family.
#include <type_traits>

#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {

// each kernel, declared with its member's function type
#define SG_DECLARE(name) std::remove_pointer_t<decltype(Kernels::name)> name;
SG_KERNEL_NAMES(SG_DECLARE)

// a member left out of SG_KERNEL_NAMES would stay null
#define SG_COUNT(name) +1
static_assert(sizeof(Kernels) == (1 SG_KERNEL_NAMES(SG_COUNT)) * sizeof(void*), "SG_KERNEL_NAMES must name every kernel");

#define SG_STR2(x) #x
#define SG_STR(x) SG_STR2(x)

// constexpr: the table is constant-initialized, with no initializer run at load. One built for
// AVX2 or AVX-512 ran AVX instructions when the addon loaded, and killed it (SIGILL) on a CPU
// without them, before dispatch could choose another table.
static constexpr Kernels make_table() {
  Kernels k{};
  k.isa = SG_STR(SG_NS);
#define SG_SET(name) k.name = name;
  SG_KERNEL_NAMES(SG_SET)
  return k;
}

extern constexpr Kernels table = make_table();

}  // namespace SG_NS
}  // namespace sg
