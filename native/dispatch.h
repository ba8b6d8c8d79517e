// Run-time choice of the kernel table: the best ISA the CPU and OS support, capped by setIsa().
#pragma once

#include "kernels/kernels.h"

namespace sg {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
bool parse_isa(const char* name, Isa* out);
Isa detected_isa();           // what this CPU (and this build) can run
Isa active_isa();
Isa set_isa_cap(Isa cap);     // active = min(cap, detected); returns active
const Kernels& kernels();     // the active table

}  // namespace sg
