// Run-time choice of the kernel table: the best ISA the CPU and OS support, capped by setIsa().
#pragma once

#include "kernels/kernels.h"

namespace sg {

enum class Isa { scalar, avx2, avx512, neon };

const char* isa_name(Isa isa);
int isa_count();              // this build's ISAs, lowest first: scalar, avx2, avx512 or scalar, neon
Isa isa_at(int i);            // 0 <= i < isa_count()
bool parse_isa(const char* name, Isa* out);  // false for a name that is not one of this build's
Isa detected_isa();           // what this CPU (and this build) can run
Isa active_isa();
Isa set_isa_cap(Isa cap);     // active = the lower of cap and detected; returns active
const Kernels& kernels();     // the active table

}  // namespace sg
