/*
 * limitexec: set resource limits on itself, then execute a program.
 *
 *   limitexec AS_BYTES CPU_SOFT_S CPU_HARD_S FSIZE_BYTES STACK_BYTES CORE_BYTES -- PROGRAM [ARGS...]
 *
 * Each limit is a decimal number, or "-" to leave the inherited value.
 * Exit status 127 (program not found) or 126 (cannot execute it), with a
 * one-line message on stderr, when the exec fails -- as a shell does.
 *
 * Why this exists: the engine spawns programs through vfork (Python's
 * subprocess without preexec_fn), which is ~3x cheaper than fork from a big
 * Python process, but then nothing runs in the child between fork and exec
 * where setrlimit() could be called. Setting the limits on the pid after it
 * started races with the program (its bss is mapped at exec). So the engine
 * executes this wrapper, which sets the limits and executes the program.
 *
 * It is built by sio/workers/_engine/process.py on first use with the
 * system C compiler. The default build uses no C library at all (raw system
 * calls, x86-64 and aarch64): a static binary without libc start-up costs
 * ~0.06 ms per run, a libc-linked one ~0.35-0.5 ms. On other architectures
 * the engine builds it with -DLIMITEXEC_LIBC instead.
 */

#define R_CPU 0
#define R_FSIZE 1
#define R_STACK 3
#define R_CORE 4
#define R_AS 9

struct rlim64 {
    unsigned long cur, max;
};

#ifdef LIMITEXEC_LIBC

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

static long set_limit(int resource, struct rlim64 *r)
{
    struct rlimit l;
    l.rlim_cur = r->cur;
    l.rlim_max = r->max;
    return setrlimit(resource, &l) ? -errno : 0;
}

static long do_execve(char *path, char **argv, char **envp)
{
    execve(path, argv, envp);
    return -errno;
}

static void put(const char *s, unsigned long n) { (void)!write(2, s, n); }
__attribute__((noreturn)) static void quit(int code) { _exit(code); }

#else /* raw system calls, no C library */

#if defined(__x86_64__)
#define NR_WRITE 1
#define NR_EXECVE 59
#define NR_EXIT_GROUP 231
#define NR_SETRLIMIT 160
static long sys3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}
/* The kernel enters with argc at (%rsp); keep the stack 16-byte aligned. */
__asm__(".text\n.globl _start\n_start:\n"
        "  mov %rsp, %rdi\n  and $-16, %rsp\n  call limitexec_main\n  hlt\n");
#elif defined(__aarch64__)
#define NR_WRITE 64
#define NR_EXECVE 221
#define NR_EXIT_GROUP 94
#define NR_SETRLIMIT 164
static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl limitexec_main\n  brk #0\n");
#else
#error "no raw system calls for this architecture: build with -DLIMITEXEC_LIBC"
#endif

#define ENOENT 2

static long set_limit(int resource, struct rlim64 *r)
{
    return sys3(NR_SETRLIMIT, resource, (long)r, 0);
}

static long do_execve(char *path, char **argv, char **envp)
{
    return sys3(NR_EXECVE, (long)path, (long)argv, (long)envp);
}

static void put(const char *s, unsigned long n) { sys3(NR_WRITE, 2, (long)s, (long)n); }

__attribute__((noreturn)) static void quit(int code)
{
    for (;;)
        sys3(NR_EXIT_GROUP, code, 0, 0);
}

#endif /* LIMITEXEC_LIBC */

static unsigned long len(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static void say(const char *s) { put(s, len(s)); }

static void fail(const char *what, const char *arg, long err)
{
    char num[24];
    int i = sizeof(num);
    unsigned long e = err < 0 ? -err : err;
    num[--i] = '\n';
    do {
        num[--i] = (char)('0' + e % 10);
        e /= 10;
    } while (e && i > 0);
    say("limitexec: ");
    say(what);
    say(arg);
    say(": errno ");
    put(num + i, sizeof(num) - i);
}

/* Parses a decimal number; returns 0 for "-" (leave the limit alone). */
static int parse(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    if (s[0] == '-' && s[1] == 0)
        return 0;
    if (!*s)
        fail("bad limit ", s, 22), quit(126);
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            fail("bad limit ", s, 22), quit(126);
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = v;
    return 1;
}

static void limit(int resource, const char *soft, const char *hard)
{
    struct rlim64 r;
    if (!parse(soft, &r.cur))
        return;
    if (!parse(hard, &r.max))
        r.max = r.cur;
    long err = set_limit(resource, &r);
    if (err)
        fail("cannot set limit ", soft, err), quit(126);
}

#ifdef LIMITEXEC_LIBC
int main(int argc, char **argv, char **envp)
{
#else
__attribute__((noreturn, used)) void limitexec_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
#endif
    if (argc < 9 || argv[7][0] != '-' || argv[7][1] != '-' || argv[7][2]) {
        say("usage: limitexec AS CPU_SOFT CPU_HARD FSIZE STACK CORE -- PROGRAM [ARGS...]\n");
        quit(126);
    }
    limit(R_AS, argv[1], "-");
    limit(R_CPU, argv[2], argv[3]);
    limit(R_FSIZE, argv[4], "-");
    limit(R_STACK, argv[5], "-");
    limit(R_CORE, argv[6], "-");
    long err = do_execve(argv[8], argv + 8, envp);
    fail("cannot execute ", argv[8], err);
    quit(err == -ENOENT ? 127 : 126);
#ifdef LIMITEXEC_LIBC
    return 126;
#endif
}
