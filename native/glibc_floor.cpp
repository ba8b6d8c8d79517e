// The prebuilt addon loads on glibc 2.28 (RHEL 8, Debian 10, Ubuntu 20.04: Node 20's own floor)
// although it is built against a newer one: every glibc symbol whose default version is newer
// than the floor is bound to an older version that glibc still exports.
//
// binding.gyp links the C++ runtime in statically (no GLIBCXX_/CXXABI_ needs) and passes
// -Wl,--wrap=NAME for each NAME below, so that every reference to NAME, ours and libstdc++.a's
// alike, goes to __wrap_NAME here, which calls the old version (.symver). Only on glibc: musl and
// other systems have no symbol versions and build without the wraps.
#if defined(SG_GLIBC_FLOOR)
#include <errno.h>
#include <pthread.h>
#include <sys/random.h>
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__)
#define SG_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define SG_BASE "GLIBC_2.17"
#else
#error "glibc_floor.cpp: no base glibc version known for this architecture"
#endif

extern "C" {
// the versions the floor allows: libm's pow from before 2.29's errno-free rewrite, and the pthread
// functions as libpthread exported them before 2.34 moved them into libc
#define SG_OLD(ret, name, params) \
  ret sg_old_##name params;       \
  __asm__(".symver sg_old_" #name "," #name "@" SG_BASE);
SG_OLD(double, pow, (double, double))
SG_OLD(int, pthread_create, (pthread_t*, const pthread_attr_t*, void* (*)(void*), void*))
SG_OLD(int, pthread_detach, (pthread_t))
SG_OLD(int, pthread_join, (pthread_t, void**))
SG_OLD(void*, pthread_getspecific, (pthread_key_t))
SG_OLD(int, pthread_setspecific, (pthread_key_t, const void*))
SG_OLD(int, pthread_key_create, (pthread_key_t*, void (*)(void*)))
SG_OLD(int, __pthread_key_create, (pthread_key_t*, void (*)(void*)))
SG_OLD(int, pthread_key_delete, (pthread_key_t))
SG_OLD(int, pthread_once, (pthread_once_t*, void (*)(void)))
SG_OLD(int, pthread_mutex_trylock, (pthread_mutex_t*))

#define SG_VISIBLE __attribute__((visibility("hidden")))
SG_VISIBLE double __wrap_pow(double x, double y) { return sg_old_pow(x, y); }
SG_VISIBLE int __wrap_pthread_create(pthread_t* t, const pthread_attr_t* a, void* (*f)(void*), void* arg) {
  return sg_old_pthread_create(t, a, f, arg);
}
SG_VISIBLE int __wrap_pthread_detach(pthread_t t) { return sg_old_pthread_detach(t); }
SG_VISIBLE int __wrap_pthread_join(pthread_t t, void** r) { return sg_old_pthread_join(t, r); }
SG_VISIBLE void* __wrap_pthread_getspecific(pthread_key_t k) { return sg_old_pthread_getspecific(k); }
SG_VISIBLE int __wrap_pthread_setspecific(pthread_key_t k, const void* v) { return sg_old_pthread_setspecific(k, v); }
SG_VISIBLE int __wrap_pthread_key_create(pthread_key_t* k, void (*d)(void*)) { return sg_old_pthread_key_create(k, d); }
SG_VISIBLE int __wrap___pthread_key_create(pthread_key_t* k, void (*d)(void*)) { return sg_old___pthread_key_create(k, d); }
SG_VISIBLE int __wrap_pthread_key_delete(pthread_key_t k) { return sg_old_pthread_key_delete(k); }
SG_VISIBLE int __wrap_pthread_once(pthread_once_t* o, void (*f)(void)) { return sg_old_pthread_once(o, f); }
SG_VISIBLE int __wrap_pthread_mutex_trylock(pthread_mutex_t* m) { return sg_old_pthread_mutex_trylock(m); }

// Two that have no older version. libstdc++ reads __libc_single_threaded (2.32) to skip atomic
// reference counts while a process has one thread; 0 means "maybe several": always atomic, as
// before 2.32. std::random_device calls arc4random (2.36) for the "default" token, which nothing
// here uses but whose object comes along with std::string's; getrandom (2.25) gives the same.
SG_VISIBLE char __wrap___libc_single_threaded = 0;
SG_VISIBLE uint32_t __wrap_arc4random(void) {
  uint32_t r = 0;
  for (;;) {
    if (getrandom(&r, sizeof r, 0) == (ssize_t)sizeof r) return r;
    if (errno != EINTR) std::abort();  // as glibc's arc4random does when the kernel has no entropy call
  }
}

#if defined(SG_GLIBC_FLOOR_DL)
// The MPI addon's: dlopen and dlerror as libdl exported them before 2.34 moved them into libc (the
// versioned name is found in libdl.so.2, which Node itself loads on those systems)
SG_OLD(void*, dlopen, (const char*, int))
SG_OLD(char*, dlerror, (void))
SG_VISIBLE void* __wrap_dlopen(const char* file, int mode) { return sg_old_dlopen(file, mode); }
SG_VISIBLE char* __wrap_dlerror(void) { return sg_old_dlerror(); }
#endif
#undef SG_OLD
}
#endif
