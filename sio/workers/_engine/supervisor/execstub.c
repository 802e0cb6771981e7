/*
 * execstub: the pre-started child of the supervisor's spawner, as a small
 * native program.
 *
 * The spawner (a Python process, _spawner.py) forks its next run's child
 * ahead of time. Without this stub that child stays a copy of the Python
 * spawner until the run, and then sets the run up in Python and executes
 * the program: ~0.3 ms of interpreted set-up in the child, and ~0.5 ms for
 * the kernel to tear down the child's copy of the interpreter at exec, both
 * while the worker waits. With the stub, the child executes this program
 * right after the fork, *between* runs, and waits here instead: at run
 * time the same steps take a few microseconds and the exec replaces a
 * process of a few pages.
 *
 * Contract with the spawner (_spawner.py: Spawner._warm_child; _run.py:
 * Run.execute; _stubproto.py: pack_setup):
 *
 *  - started with fd 3 = a connected AF_UNIX stream socket to the spawner,
 *    fds 0-2 open, no other descriptors, default signal dispositions, an
 *    empty signal mask, in its own session;
 *  - it writes one byte "R" on fd 3 as soon as it runs (the spawner waits
 *    for it before seizing it: seized earlier, the tracer would take the
 *    exec that started the stub for the program's);
 *  - it blocks until the spawner has PTRACE_SEIZEd it and sent one setup
 *    message: a little-endian u32 length, then that many bytes (layout in
 *    read_setup() below), with the program's descriptors attached to the
 *    first bytes (SCM_RIGHTS): stdin, stdout, stderr, then the Landlock
 *    ruleset when the LANDLOCK flag is set;
 *  - end of stream before a message: the spawner has gone; exit 0;
 *  - any failure before the program runs: the reason (strerror text, or a
 *    protocol complaint) is written to fd 3 and the stub exits with 127.
 *    fd 3 is close-on-exec, so after a successful exec the spawner reads
 *    end-of-file there.
 *
 * The steps, in this order, are those of the Python fallback
 * (become_program in _setup.py); the order matters: the uid is dropped
 * after everything that needs privileges, RLIMIT_AS is set last but one
 * because it binds the stub too, and the seccomp filter is installed last,
 * so that the execveat right after it is the one exec the tracer allows.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define CTL 3
#define MAGIC 0x53494f53u /* "SOIS" */
#define MAX_MESSAGE (64u << 20)
#define MAX_FDS 8
#define UID_BASE 2000000000u

#define F_DROP_UID 1u
#define F_LANDLOCK 2u
#define F_ADDRESS_SPACE 4u
#define F_VIEW 8u
#define F_PROC 16u
#define F_FAKE_TSC 32u

#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

static void say(const char *text)
{
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = write(CTL, text, len);
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

static void fail(const char *text)
{
    say(text);
    _exit(127);
}

static void fail_errno(int err)
{
    fail(strerror(err));
}

/* --- reading the setup message ------------------------------------------ */

struct reader {
    const unsigned char *p, *end;
};

static uint32_t u32(struct reader *r)
{
    uint32_t v;
    if ((size_t)(r->end - r->p) < 4)
        fail("malformed run set-up (truncated)");
    memcpy(&v, r->p, 4);
    r->p += 4;
    return v;
}

static uint64_t u64(struct reader *r)
{
    uint64_t v;
    if ((size_t)(r->end - r->p) < 8)
        fail("malformed run set-up (truncated)");
    memcpy(&v, r->p, 8);
    r->p += 8;
    return v;
}

/* A NUL-terminated string of the message, in place. */
static char *str(struct reader *r)
{
    uint32_t len = u32(r);
    char *s = (char *)r->p;
    if (len == 0 || (size_t)(r->end - r->p) < len || s[len - 1] != '\0')
        fail("malformed run set-up (bad string)");
    r->p += len;
    return s;
}

/* A NULL-terminated array of strings (argv, envp). */
static char **strings(struct reader *r)
{
    uint32_t n = u32(r);
    if (n > (uint32_t)(r->end - r->p) / 4)
        fail("malformed run set-up (bad count)");
    char **out = calloc((size_t)n + 1, sizeof(char *));
    if (out == NULL)
        fail_errno(ENOMEM);
    for (uint32_t i = 0; i < n; i++)
        out[i] = str(r);
    return out;
}

static void read_fully(unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(CTL, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0); /* the spawner has gone mid-message */
        buf += n;
        len -= (size_t)n;
    }
}

/* Wait for the setup; return its bytes and the descriptors that came with it. */
static unsigned char *receive(uint32_t *size, int *fds, int *nfds)
{
    unsigned char header[4];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    } control;
    struct iovec iov = {header, sizeof header};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    do
        n = recvmsg(CTL, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        _exit(0); /* end of stream: the spawner has gone */
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count && *nfds < MAX_FDS; i++)
            memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (msg.msg_flags & MSG_CTRUNC)
        fail("malformed run set-up (too many descriptors)");
    if (n < (ssize_t)sizeof header)
        read_fully(header + n, sizeof header - (size_t)n);
    memcpy(size, header, 4);
    if (*size > MAX_MESSAGE)
        fail("malformed run set-up (too large)");
    unsigned char *body = malloc(*size ? *size : 1);
    if (body == NULL)
        fail_errno(ENOMEM);
    read_fully(body, *size);
    return body;
}

/* --- the run --------------------------------------------------------------- */

static void close_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < (max > 0 ? max : 1024); fd++)
        close((int)fd);
}

/* The init (pid 1) of the PID namespace of a spawner's programs, started as
 * "sio-execstub init" (Spawner._start_init): the programs must not be the
 * init, which ignores the signals it has no handler for (SIGABRT, SIGPIPE,
 * SIGXCPU...). For each byte the spawner sends on fd 3 with a descriptor
 * attached, it forks a child that goes on (returns from here) as the stub of
 * the next run, with that descriptor as its fd 3. At end of stream it exits,
 * and the kernel kills whatever is left in the namespace. Children are
 * reaped by the kernel (SIGCHLD ignored), after their tracer has seen them
 * end. Same as Spawner._init_child. */
static void init_main(void)
{
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        unsigned char byte;
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        } control;
        struct iovec iov = {&byte, 1};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        ssize_t n = recvmsg(CTL, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        int fd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < count; i++) {
                    int got;
                    memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    if (fd < 0)
                        fd = got;
                    else
                        close(got);
                }
            }
        if (fd < 0)
            continue;
        pid_t child = fork();
        if (child == 0) {
            signal(SIGCHLD, SIG_DFL);
            if (dup2(fd, CTL) < 0)
                _exit(127);
            close(fd);
            /* Its own session and process group, which Run._kill kills. */
            if (setsid() < 0)
                _exit(127);
            return;
        }
        close(fd); /* a failed fork: the spawner reads end of stream */
    }
}

/* Inside the run's PID namespace, before the chroot: a /proc of that
 * namespace in the view, showing only the processes of our own uid (not the
 * init); with Landlock, our own entry is added to the ruleset (fd 4) as
 * readable. Same as _mount_own_proc in _setup.py. */
static void mount_own_proc(const char *root, int landlock)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/proc", root) >= (int)sizeof path)
        fail("malformed run set-up (root too long)");
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible") != 0)
        fail_errno(errno);
    if (!landlock)
        return;
    snprintf(path, sizeof path, "%s/proc/%d", root, (int)getpid());
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        fail_errno(errno);
    struct __attribute__((packed)) {
        uint64_t allowed_access;
        int32_t parent_fd;
    } rule = {(1u << 2) | (1u << 3), fd}; /* READ_FILE | READ_DIR */
    if (syscall(SYS_landlock_add_rule, 4, 1 /* PATH_BENEATH */, &rule, 0) != 0)
        fail_errno(errno);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "init") == 0)
        init_main(); /* returns in the child */
    /* Our socket must not reach the program. */
    if (fcntl(CTL, F_SETFD, FD_CLOEXEC) != 0)
        _exit(127);
    /* Ready: the spawner seizes us only after this, or the tracer would
     * take the exec that started us for the program's. */
    if (write(CTL, "R", 1) != 1)
        _exit(0);

    uint32_t size;
    int fds[MAX_FDS], nfds;
    unsigned char *body = receive(&size, fds, &nfds);
    struct reader r = {body, body + size};

    /* Layout (little-endian; str = u32 length including the NUL, bytes):
     *   u32 MAGIC, i32 cpu (-1: leave), u32 flags, u64 address-space bytes,
     *   u32 uid (with DROP_UID), u32 n, n * {u32 resource, u32 0, u64 soft, u64 hard},
     *   str cwd, str exe, str root (the view, with VIEW), u32 argc, argc * str,
     *   u32 envc, envc * str,
     *   u32 filter bytes, the classic BPF program (8 bytes an instruction). */
    if (u32(&r) != MAGIC)
        fail("malformed run set-up (bad magic)");
    int32_t cpu = (int32_t)u32(&r);
    uint32_t flags = u32(&r);
    uint64_t address_space = u64(&r);
    uint32_t uid = u32(&r);
    uint32_t nlimits = u32(&r);
    if (nlimits > 64)
        fail("malformed run set-up (too many limits)");
    uint32_t resources[64];
    struct rlimit limits[64];
    for (uint32_t i = 0; i < nlimits; i++) {
        resources[i] = u32(&r);
        (void)u32(&r);
        limits[i].rlim_cur = u64(&r);
        limits[i].rlim_max = u64(&r);
    }
    const char *cwd = str(&r);
    const char *exe = str(&r);
    const char *root = str(&r);
    char **args = strings(&r);
    char **envp = strings(&r);
    uint32_t filter_bytes = u32(&r);
    if (filter_bytes == 0 || filter_bytes % sizeof(struct sock_filter) != 0
        || filter_bytes / sizeof(struct sock_filter) > 4096
        || (size_t)(r.end - r.p) != filter_bytes)
        fail("malformed run set-up (bad filter)");
    struct sock_filter *filter = malloc(filter_bytes); /* aligned copy */
    if (filter == NULL)
        fail_errno(ENOMEM);
    memcpy(filter, r.p, filter_bytes);
    struct sock_fprog prog = {(unsigned short)(filter_bytes / sizeof(struct sock_filter)),
                              filter};

    int landlock = (flags & F_LANDLOCK) != 0;
    if (nfds != 3 + landlock)
        fail("malformed run set-up (wrong number of descriptors)");

    /* The tracer's CPU (it pins itself there for the run). */
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            fail_errno(errno);
    }

    /* Descriptors to fixed numbers via a high range first, so that no dup2
     * overwrites a source still needed: 0-2 the program's stdio (inherited
     * across exec), 3 our socket, 4 the ruleset (close-on-exec). */
    int high[MAX_FDS];
    for (int i = 0; i < nfds; i++) {
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
        if (high[i] < 0)
            fail_errno(errno);
    }
    for (int i = 0; i < 3; i++)
        if (dup2(high[i], i) < 0)
            fail_errno(errno);
    if (landlock && dup3(high[3], 4, O_CLOEXEC) < 0)
        fail_errno(errno);
    close_from(landlock ? 5 : 4);

    /* Opened while still privileged and before the chroot: the program
     * runs from this descriptor, so the path to it need not be searchable by
     * the unprivileged uid, nor exist in its view. */
    int exe_fd = open(exe, O_PATH | O_CLOEXEC);
    if (exe_fd < 0)
        fail_errno(errno);
    if (flags & F_VIEW) {
        if (flags & F_PROC)
            mount_own_proc(root, landlock);
        if (chroot(root) != 0)
            fail_errno(errno);
    }
    if (chdir(cwd) != 0)
        fail_errno(errno);

    if (flags & F_DROP_UID) {
        /* UID_BASE + our pid as the spawner sees it: unique among live
         * processes (inside a PID namespace getpid() is always 2). */
        if (uid < UID_BASE)
            fail("malformed run set-up (bad uid)");
        if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0
            || setresuid(uid, uid, uid) != 0)
            fail_errno(errno);
    }
    for (uint32_t i = 0; i < nlimits; i++) {
        if (setrlimit((int)resources[i], &limits[i]) == 0)
            continue;
        int err = errno;
        if (resources[i] != RLIMIT_STACK)
            fail_errno(err);
        /* Cannot raise the hard stack limit: as much as it allows. */
        struct rlimit now;
        if (getrlimit(RLIMIT_STACK, &now) != 0)
            fail_errno(errno);
        if (limits[i].rlim_cur > now.rlim_max)
            limits[i].rlim_cur = now.rlim_max;
        limits[i].rlim_max = now.rlim_max;
        if (setrlimit(RLIMIT_STACK, &limits[i]) != 0)
            fail_errno(errno);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) /* required by seccomp and Landlock */
        fail_errno(errno);
    if (landlock) {
        if (syscall(SYS_landlock_restrict_self, 4, 0) != 0)
            fail_errno(errno);
        close(4);
    }
    if (flags & F_ADDRESS_SPACE) {
        /* Last but one: it binds this stub too, which from here on makes
         * only the calls below. */
        struct rlimit as = {address_space, address_space};
        if (setrlimit(RLIMIT_AS, &as) != 0)
            fail_errno(errno);
    }
    if (flags & F_FAKE_TSC) {
        /* fake_time: RDTSC/RDTSCP fault (SIGSEGV) from here on, across the
         * exec too, and the tracer emulates them. */
        if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0)
            fail_errno(errno);
    }
    /* SPEC_ALLOW: do not force the Speculative Store Bypass mitigation on the
     * program (a several-percent slowdown where the CPU has it; a supervised
     * program is alone in its address space). EINVAL: a kernel before 4.17. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) != 0) {
        if (errno != EINVAL || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
            fail_errno(errno);
    }
    /* From here on every call goes through the filter: this execveat is the
     * one exec the tracer allows. */
    syscall(SYS_execveat, exe_fd, "", args, envp, AT_EMPTY_PATH);
    fail_errno(errno);
    return 127;
}
