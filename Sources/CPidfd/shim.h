// pidfd_getfd(2) for Swift, which cannot call the variadic syscall(2); see
// docs/agent-protocol.md, "Direct pipes". Linux 5.6 and later; older kernels answer ENOSYS.
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static inline int berth_pidfd_getfd(int pidfd, int descriptor) { return (int)syscall(SYS_pidfd_getfd, pidfd, descriptor, 0); }
