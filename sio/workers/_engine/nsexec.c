/* nsexec: start one process of a multi-process task inside its namespaces.
 *
 * Built once per machine by sio/workers/_engine/groups.py (like limitexec).
 * Runs as root; every step below happens before the program's execve, in
 * this order, because each needs the privilege the next one drops:
 *
 *   -C DIR          join cgroup DIR (write our pid to DIR/cgroup.procs);
 *                   repeatable (one per controller). Joined by the program
 *                   before it starts anything, so all it starts is counted;
 *                   the waiter of -P stays outside.
 *   -P PATH         join the PID namespace PATH (/proc/N/ns/pid). setns()
 *                   only moves future children, so we fork: the child goes
 *                   on, this process waits and exits with its status.
 *   -p              a new PID namespace for this program alone: fork, the
 *                   program is its PID 1 (cheaper than -P when nothing else
 *                   joins the namespace).
 *   -H              hold mode: create a PID namespace (with -N also network,
 *                   IPC and UTS namespaces), fork its init (a reaper that
 *                   never exits by itself), print the init's host pid on
 *                   stdout, wait for it. Nothing else is done.
 *   -N              new network, IPC and UTS namespaces.
 *   -J PID          join the network, IPC and UTS namespaces of process PID
 *                   (a holder made with -H -N): no per-run cost.
 *   -R DIR          new mount namespace whose root becomes a fresh tmpfs
 *                   mounted on DIR (an empty directory of the caller).
 *   -B SRC:DST:MODE bind SRC (host path) at DST (path in the new root);
 *                   MODE r = read-only, w = writable. The mount point is
 *                   created (a file for a file, a directory otherwise).
 *   -T DST:BYTES    a writable tmpfs of BYTES at DST (0 = kernel default).
 *   -S LINK:TARGET  a symbolic link LINK (in the new root) to TARGET, e.g.
 *                   /bin -> usr/bin on merged-/usr systems (cheaper than a
 *                   bind mount).
 *   -V              device nodes /dev/null, zero, random, urandom in the
 *                   new root (mknod: cheaper than bind mounts).
 *   -D DIR          working directory inside the new root.
 *   -U UID:GID      drop to this user and group (no supplementary groups).
 *   -F SRC:DST      descriptor SRC becomes DST in the program; every other
 *                   descriptor above 2 that is not a DST is closed, and
 *                   0/1/2 not given as DST become /dev/null.
 *   -E KEY=VALUE    the program's environment (repeatable; without any, it
 *                   inherits ours); its PATH is where PROGRAM is looked up.
 *   -Z BYTES        RLIMIT_FSIZE of the program (output limit: SIGXFSZ).
 *   -X SECONDS      RLIMIT_CPU of the program (soft; hard one more): only a
 *                   backstop of the caller's CPU-time watchdog.
 *                   RLIMIT_CORE is 0 with -Z or -X.
 *   --  PROGRAM ARGS...  (PROGRAM looked up in PATH of the environment).
 *
 * Failures before execve print one line "nsexec: ..." on fd 2 of the caller
 * (before the descriptors are remapped) and exit with status 127.
 *
 * Launcher mode, "nsexec -L [-J PID]": a warm launcher for the processes of
 * one workflow run, which saves each of them the caller's fork and exec of
 * the helpers (a fork of a big Python process, an exec of the rlimit
 * wrapper, an exec of nsexec: about a millisecond and a half) and the
 * joining of the network namespaces (done once, with -J, by the launcher).
 * Requests come on descriptor 0, a SOCK_SEQPACKET socket: one message per
 * process, the options above and "-- PROGRAM ARGS" as NUL-separated strings,
 * with descriptors attached (SCM_RIGHTS): [0] a status pipe, [1] a report
 * pipe, [2...] the sources of the -F options, which name them by index in
 * this list (-F 2:1 = the third descriptor becomes 1). The launcher forks
 * (into the PID namespace of -p or -P: the child is the program, there is no
 * waiter); the child does what nsexec does with the other options. On the
 * report pipe the launcher writes "P <pid>\n" once the
 * child exists, then the child's "nsexec: ..." errors follow (its fd 2). On
 * the status pipe the launcher writes only "X <wait status> <user us>
 * <system us>\n" (the program's rusage, which includes the children it
 * waited for) when it has ended, then closes it: the caller sleeps until
 * then, woken once per process. End of file on descriptor 0: the
 * launcher exits (its children are killed: PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 256

extern char **environ;

static int err_fd = 2;

static void die(const char *what, const char *arg) {
    dprintf(err_fd, "nsexec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "",
            strerror(errno));
    _exit(127);
}

static void die_msg(const char *what) {
    dprintf(err_fd, "nsexec: %s\n", what);
    _exit(127);
}

/* Wait for the child and leave the way it left (same status or signal). */
static void mirror(pid_t child) {
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid", NULL);
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        prctl(PR_SET_DUMPABLE, 0);
        kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(WEXITSTATUS(status));
}

/* Close descriptors lo..hi (close_range, or one by one on old kernels). */
static void close_from(unsigned lo, unsigned hi) {
    if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
    if (hi > 65535) hi = 65535;
    for (unsigned f = lo; f <= hi; f++) close(f);
}

static void on_child(int sig) { (void)sig; }

static void hold(int newnet) {
    int flags = CLONE_NEWPID | (newnet ? CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS : 0);
    if (unshare(flags) < 0) die("unshare(pid, net, ipc, uts)", NULL);
    pid_t init = fork();
    if (init < 0) die("fork", NULL);
    if (init == 0) {
        /* PID 1 of the namespace: reap whatever is reparented to us. */
        signal(SIGCHLD, on_child);
        for (;;) {
            if (waitpid(-1, NULL, 0) < 0) pause();
        }
    }
    dprintf(1, "%d\n", (int)init);
    close(1);
    mirror(init);
}

/* Create the missing directories of path after its first skip bytes (the
 * new root, which exists: its components are host directories, and a
 * mkdir of each for every mount costs more than the mount). */
static void make_parents(char *path, size_t skip) {
    for (char *p = path + skip + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
            *p = '/';
        }
    }
}

static void mount_point(const char *root, const char *dst, int is_dir, char *out, size_t n) {
    if (dst[0] != '/') die_msg("mount targets must be absolute paths");
    if (snprintf(out, n, "%s%s", root, dst) >= (int)n) die_msg("path too long");
    make_parents(out, strlen(root));
    if (is_dir) {
        if (mkdir(out, 0755) < 0 && errno != EEXIST) die("mkdir", out);
    } else {
        int fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) die("create", out);
        close(fd);
    }
}

static int ns_main(int argc, char **argv) {
    const char *envs[MAX_ITEMS + 1];
    int nenv = 0;
    long fsize = -1, cpusec = -1;
    const char *cgroups[MAX_ITEMS], *binds[MAX_ITEMS], *tmpfss[MAX_ITEMS], *links[MAX_ITEMS];
    int ncg = 0, nb = 0, nt = 0, nf = 0, nl = 0, devices = 0, ownpid = 0;
    const char *joinns = NULL;
    int fsrc[MAX_ITEMS], fdst[MAX_ITEMS];
    const char *pidns = NULL, *root = NULL, *cwd = NULL, *user = NULL;
    int holdmode = 0, newnet = 0, i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (a[0] != '-' || a[1] == 0 || a[2] != 0) die_msg("bad option");
        char o = a[1];
        if (o == 'H') { holdmode = 1; continue; }
        if (o == 'N') { newnet = 1; continue; }
        if (o == 'V') { devices = 1; continue; }
        if (o == 'p') { ownpid = 1; continue; }
        if (i + 1 >= argc) die_msg("option without a value");
        const char *v = argv[++i];
        switch (o) {
        case 'C': if (ncg < MAX_ITEMS) cgroups[ncg++] = v; break;
        case 'P': pidns = v; break;
        case 'R': root = v; break;
        case 'B': if (nb < MAX_ITEMS) binds[nb++] = v; break;
        case 'T': if (nt < MAX_ITEMS) tmpfss[nt++] = v; break;
        case 'S': if (nl < MAX_ITEMS) links[nl++] = v; break;
        case 'J': joinns = v; break;
        case 'D': cwd = v; break;
        case 'U': user = v; break;
        case 'E': if (nenv < MAX_ITEMS) envs[nenv++] = v; else die_msg("too many -E"); break;
        case 'Z': fsize = atol(v); break;
        case 'X': cpusec = atol(v); break;
        case 'F':
            if (nf < MAX_ITEMS && sscanf(v, "%d:%d", &fsrc[nf], &fdst[nf]) == 2) nf++;
            else die_msg("bad -F");
            break;
        default: die_msg("unknown option");
        }
    }
    if (holdmode) hold(newnet);
    /* Copies of the sources go above every target; descriptors such as
     * 2137 or 65534 may need a higher RLIMIT_NOFILE than the default. */
    int high = 1024;
    for (int f = 0; f < nf; f++) if (fdst[f] + 1 > high) high = fdst[f] + 1;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (rlim_t)(high + nf + 2)) {
        nofile.rlim_cur = (rlim_t)(high + nf + 2);
        if (nofile.rlim_max < nofile.rlim_cur) nofile.rlim_max = nofile.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) die("raise RLIMIT_NOFILE", NULL);
    }
    /* Errors after the remapping still go to the caller's stderr. */
    int saved = fcntl(2, F_DUPFD_CLOEXEC, high + nf);
    if (saved >= 0) err_fd = saved;
    if (i >= argc) die_msg("no program");

    if (joinns) {
        static const char *kinds[] = {"net", "ipc", "uts"};
        static const int types[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS};
        for (int k = 0; k < 3; k++) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%s/ns/%s", joinns, kinds[k]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || setns(fd, types[k]) < 0) die("join namespace", path);
            close(fd);
        }
    }
    if (pidns || ownpid) {
        if (pidns) {
            int fd = open(pidns, O_RDONLY | O_CLOEXEC);
            if (fd < 0) die("open", pidns);
            if (setns(fd, CLONE_NEWPID) < 0) die("setns", pidns);
            close(fd);
        } else if (unshare(CLONE_NEWPID) < 0) {
            die("unshare(CLONE_NEWPID)", NULL);
        }
        pid_t child = fork();
        if (child < 0) die("fork", NULL);
        if (child > 0) {
            /* This waiter must not keep the program's descriptors (pipe
             * ends) open after the program has ended. */
            err_fd = 2;
            close_from(3, ~0U);
            close(0); close(1);
            mirror(child);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    /* Only the program joins the cgroups, not the waiter above: killing
     * the group leaves the waiter to reap the program (its CPU time comes
     * back in the waiter's rusage) and to report how it ended. */
    char buf[4096];
    for (int c = 0; c < ncg; c++) {
        snprintf(buf, sizeof buf, "%s/cgroup.procs", cgroups[c]);
        int fd = open(buf, O_WRONLY | O_CLOEXEC);
        if (fd < 0) die("open", buf);
        if (dprintf(fd, "%d\n", (int)getpid()) < 0) die("join cgroup", cgroups[c]);
        close(fd);
    }
    if (newnet && unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
        die("unshare(net, ipc, uts)", NULL);
    if (root) {
        if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS)", NULL);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private", NULL);
        if (mount("none", root, "tmpfs", MS_NOSUID, "size=1m,mode=755") < 0) die("tmpfs", root);
        for (int b = 0; b < nb; b++) {
            char spec[4096], target[4096];
            snprintf(spec, sizeof spec, "%s", binds[b]);
            char *mode = strrchr(spec, ':');
            if (!mode) die_msg("bad -B");
            *mode++ = 0;
            char *dst = strrchr(spec, ':');
            if (!dst) die_msg("bad -B");
            *dst++ = 0;
            struct stat st;
            if (stat(spec, &st) < 0) die("stat", spec);
            mount_point(root, dst, S_ISDIR(st.st_mode), target, sizeof target);
            if (mount(spec, target, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind", spec);
            if (*mode == 'r' &&
                mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID, NULL) < 0)
                die("read-only remount", target);
        }
        for (int l = 0; l < nl; l++) {
            char spec[4096], path[4096];
            snprintf(spec, sizeof spec, "%s", links[l]);
            char *target = strchr(spec, ':');
            if (!target) die_msg("bad -S");
            *target++ = 0;
            if (snprintf(path, sizeof path, "%s%s", root, spec) >= (int)sizeof path)
                die_msg("path too long");
            make_parents(path, strlen(root));
            if (symlink(target, path) < 0) die("symlink", path);
        }
        if (devices) {
            static const char *names[] = {"null", "zero", "random", "urandom"};
            static const int minors[] = {3, 5, 8, 9};
            char path[4096];
            snprintf(path, sizeof path, "%s/dev", root);
            if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
            for (int d = 0; d < 4; d++) {
                snprintf(path, sizeof path, "%s/dev/%s", root, names[d]);
                if (mknod(path, S_IFCHR | 0666, makedev(1, minors[d])) < 0) die("mknod", path);
                chmod(path, 0666);  /* despite the umask */
            }
        }
        for (int t = 0; t < nt; t++) {
            char spec[4096], target[4096], opts[64];
            snprintf(spec, sizeof spec, "%s", tmpfss[t]);
            char *size = strrchr(spec, ':');
            if (!size) die_msg("bad -T");
            *size++ = 0;
            mount_point(root, spec, 1, target, sizeof target);
            if (strcmp(size, "0")) snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
            else snprintf(opts, sizeof opts, "mode=1777");
            if (mount("none", target, "tmpfs", MS_NOSUID, opts) < 0) die("tmpfs", target);
        }
        if (mount(NULL, root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID, NULL) < 0 &&
            mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID, NULL) < 0)
            die("read-only root", root);
        if (chdir(root) < 0) die("chdir", root);
        if (chroot(".") < 0) die("chroot", root);
    }
    if (chdir(cwd ? cwd : "/") < 0) die("chdir", cwd ? cwd : "/");
    if (user) {
        unsigned uid, gid;
        if (sscanf(user, "%u:%u", &uid, &gid) != 2) die_msg("bad -U");
        if (setgroups(0, NULL) < 0) die("setgroups", NULL);
        if (setgid(gid) < 0) die("setgid", NULL);
        if (setuid(uid) < 0) die("setuid", NULL);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs", NULL);

    /* Remap descriptors: first move every source above all targets, so
     * that no dup2 overwrites a source still to be moved. */
    for (int f = 0; f < nf; f++) {
        int copy = fcntl(fsrc[f], F_DUPFD_CLOEXEC, high);
        if (copy < 0) die("dup", NULL);
        fsrc[f] = copy;
    }
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int std = 0; std < 3; std++) {
        int given = 0;
        for (int f = 0; f < nf; f++) if (fdst[f] == std) given = 1;
        if (!given && null_fd >= 0) dup2(null_fd, std);
        else if (!given) close(std);
    }
    for (int f = 0; f < nf; f++) {
        if (dup2(fsrc[f], fdst[f]) < 0) die("dup2", NULL);
    }
    /* Close everything else below the copies (which are close-on-exec):
     * the gaps between the targets, in ascending order. */
    unsigned lo = 3;
    for (;;) {
        unsigned next = 1024;
        for (int g = 0; g < nf; g++)
            if ((unsigned)fdst[g] >= lo && (unsigned)fdst[g] < next) next = fdst[g];
        if (next > lo) close_from(lo, next - 1);
        if (next >= 1024) break;
        lo = next + 1;
    }
    if (fsize >= 0 || cpusec >= 0) {
        struct rlimit r = {0, 0};
        if (setrlimit(RLIMIT_CORE, &r) < 0) die("RLIMIT_CORE", NULL);
        if (fsize >= 0) {
            r.rlim_cur = r.rlim_max = (rlim_t)fsize;
            if (setrlimit(RLIMIT_FSIZE, &r) < 0) die("RLIMIT_FSIZE", NULL);
        }
        if (cpusec >= 0) {
            r.rlim_cur = (rlim_t)cpusec;
            r.rlim_max = (rlim_t)cpusec + 1;
            if (setrlimit(RLIMIT_CPU, &r) < 0) die("RLIMIT_CPU", NULL);
        }
    }
    if (nenv) {
        envs[nenv] = NULL;
        environ = (char **)envs;  /* execvp looks PROGRAM up in this PATH */
    }
    execvp(argv[i], argv + i);
    dprintf(err_fd, "nsexec: cannot execute %s: %s\n", argv[i], strerror(errno));
    _exit(127);
}

/* ---- launcher mode ---------------------------------------------------- */

#define MAX_FDS 64
#define MAX_ARGS 2048

struct running { pid_t pid; int status_fd; };

static void join_network(const char *pid) {
    static const char *kinds[] = {"net", "ipc", "uts"};
    static const int types[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS};
    for (int k = 0; k < 3; k++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, kinds[k]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, types[k]) < 0) die("join namespace", path);
        close(fd);
    }
}

/* Start one requested process: never returns in the child. */
/* Start one requested process: never returns in the child; -1 (a message
 * written to the request's report pipe) when it could not be started.
 *
 * The PID namespace of -p or -P is entered here, for the fork: the child is
 * the program itself (PID 1 of its own namespace with -p), reaped by the
 * launcher, instead of a waiter that forks the program and mirrors how it
 * ended (one fork and one process less per program). own_pidns is the
 * launcher's, restored after the fork. */
static pid_t launch(char *buf, size_t n, int *fds, int nfds, sigset_t *old, int sfd,
                    int own_pidns) {
    char *args[MAX_ARGS + 2];
    int argc = 0;
    const char *pidns = NULL;
    int ownpid = 0, options = 1;
    args[argc++] = "nsexec";
    for (size_t k = 0; k < n && argc < MAX_ARGS; k += strlen(buf + k) + 1) {
        char *a = buf + k;
        if (options && !strcmp(a, "--")) options = 0;
        if (options && !strcmp(a, "-p")) { ownpid = 1; continue; }
        if (options && !strcmp(a, "-P") && k + strlen(a) + 1 < n) {
            k += strlen(a) + 1;
            pidns = buf + k;
            continue;
        }
        args[argc++] = a;
    }
    args[argc] = NULL;
    if (pidns) {
        int fd = open(pidns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWPID) < 0) {
            dprintf(fds[1], "nsexec: join PID namespace %s: %s\n", pidns, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        close(fd);
    } else if (ownpid && unshare(CLONE_NEWPID) < 0) {
        dprintf(fds[1], "nsexec: unshare(CLONE_NEWPID): %s\n", strerror(errno));
        return -1;
    }
    pid_t child = fork();
    int saved = errno;
    if (child != 0 && (pidns || ownpid) && setns(own_pidns, CLONE_NEWPID) < 0)
        die("restore the launcher's PID namespace", NULL);
    if (child < 0) dprintf(fds[1], "nsexec: fork: %s\n", strerror(saved));
    if (child != 0) return child;
    /* The child: the request's stderr is ours, the rest as plain nsexec. */
    sigprocmask(SIG_SETMASK, old, NULL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);  /* an ignored signal stays ignored across exec */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(sfd);
    close(fds[0]);
    if (dup2(fds[1], 2) < 0) _exit(127);
    close(0);
    static char rewritten[MAX_ARGS][32];
    for (int a = 1; a + 1 < argc; a++) {
        if (!strcmp(args[a], "--")) break;
        if (strcmp(args[a], "-F")) continue;
        int index, dst;
        if (sscanf(args[a + 1], "%d:%d", &index, &dst) != 2 || index < 2 || index >= nfds)
            die_msg("bad -F in a request");
        a++;
        snprintf(rewritten[a], sizeof rewritten[a], "%d:%d", fds[index], dst);
        args[a] = rewritten[a];
    }
    _exit(ns_main(argc, args));
}

static void launcher(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[2], "-J")) join_network(argv[3]);
    else if (argc != 2) die_msg("usage: nsexec -L [-J PID]");
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, &old) < 0) die("sigprocmask", NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd", NULL);
    /* A caller that stopped listening (its status pipe closed) must not
     * take the launcher down. */
    signal(SIGPIPE, SIG_IGN);
    int own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own_pidns < 0) die("open", "/proc/self/ns/pid");
    static struct running run[4096];
    int nrun = 0;
    static char buf[1 << 17];
    for (;;) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll", NULL);
        }
        if (p[1].revents) {
            struct signalfd_siginfo info;
            if (read(sfd, &info, sizeof info) < 0 && errno != EAGAIN) die("signalfd", NULL);
            int status;
            struct rusage ru;
            pid_t pid;
            while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
                for (int r = 0; r < nrun; r++) {
                    if (run[r].pid != pid) continue;
                    dprintf(run[r].status_fd, "X %d %ld %ld\n", status,
                            (long)ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
                            (long)ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec);
                    close(run[r].status_fd);
                    run[r] = run[--nrun];
                    break;
                }
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        union { struct cmsghdr h; char space[CMSG_SPACE(sizeof(int) * MAX_FDS)]; } control;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr msg = {0};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.space;
        msg.msg_controllen = sizeof control.space;
        ssize_t n = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("recvmsg", NULL);
        }
        if (n == 0) _exit(0);  /* the caller is gone: so are our children */
        buf[n] = 0;
        int fds[MAX_FDS], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int k = 0; k < count && nfds < MAX_FDS; k++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        }
        if (nfds < 2 || (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || nrun >= 4096) {
            for (int k = 0; k < nfds; k++) close(fds[k]);
            continue;  /* the caller sees end of file on the status pipe */
        }
        pid_t pid = launch(buf, (size_t)n, fds, nfds, &old, sfd, own_pidns);
        if (pid >= 0) {
            dprintf(fds[1], "P %d\n", (int)pid);
            run[nrun].pid = pid;
            run[nrun++].status_fd = fds[0];
        }
        /* Our copies must go now: a pipe end held here would keep its
         * peer from seeing end of file. */
        for (int k = pid < 0 ? 0 : 1; k < nfds; k++) close(fds[k]);
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "-L")) launcher(argc, argv);
    return ns_main(argc, argv);
}
