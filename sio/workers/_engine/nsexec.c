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
 *   --  PROGRAM ARGS...  (PROGRAM looked up in PATH of the environment).
 *
 * Failures before execve print one line "nsexec: ..." on fd 2 of the caller
 * (before the descriptors are remapped) and exit with status 127.
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 256

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

static void make_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
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
    make_parents(out);
    if (is_dir) {
        if (mkdir(out, 0755) < 0 && errno != EEXIST) die("mkdir", out);
    } else {
        int fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) die("create", out);
        close(fd);
    }
}

int main(int argc, char **argv) {
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
            make_parents(path);
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
    execvp(argv[i], argv + i);
    dprintf(err_fd, "nsexec: cannot execute %s: %s\n", argv[i], strerror(errno));
    _exit(127);
}
