// pidfd_open(2) and pidfd_getfd(2) for Swift, which cannot call the variadic syscall(2); see
// docs/agent-protocol.md, "Direct pipes". Linux 5.6 and later; older kernels answer ENOSYS.
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

// struct ucred's layout (SO_PEERCRED), which glibc declares only with _GNU_SOURCE.
struct berth_peer_credentials {
    int pid;
    unsigned int uid;
    unsigned int gid;
};

static inline int berth_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

static inline int berth_pidfd_getfd(int pidfd, int descriptor) { return (int)syscall(SYS_pidfd_getfd, pidfd, descriptor, 0); }
