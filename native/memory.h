// The allocator's native side (memory.cpp): aligned blocks and a table of weak references.
#pragma once

#include <napi.h>

namespace sg {

// Adds alignedBlock, dropPages, watch, unwatch, isCollected and collectDead to the addon's exports.
void register_memory(Napi::Env env, Napi::Object exports);

}  // namespace sg
