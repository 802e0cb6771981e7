"""The supervisor's rules without running anything: the seccomp-bpf program
(evaluated like the kernel would), the verdict mapping and the probe's words."""

from __future__ import annotations

import errno
import struct

import pytest

from sio.workers._engine.supervisor import Capabilities, Policy
from sio.workers._engine.supervisor import bpf
from sio.workers._engine.supervisor._syscalls import NUMBERS
from sio.workers._engine.supervisor.bpf import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_TRACE,
    Stop,
)
from sio.workers._engine.types import KillReason, Outcome
from sio.workers.verdicts import verdict

FILTER = bpf.build_filter()
AUDIT_ARCH_I386 = 0x40000003


def action(name: str, *args: int, program: bytes = FILTER, arch: int = bpf.AUDIT_ARCH_X86_64):
    return bpf.evaluate(program, NUMBERS[name], tuple(args) + (0,) * (6 - len(args)), arch)


def trace(stop: int) -> int:
    return SECCOMP_RET_TRACE | stop


@pytest.mark.parametrize("name", ["read", "write", "exit_group", "brk", "futex", "munmap",
                                  "clock_gettime", "rt_sigaction", "getrandom", "lseek"])
def test_hot_calls_are_allowed_in_the_kernel(name):
    assert action(name) == SECCOMP_RET_ALLOW


@pytest.mark.parametrize("name,stop", [
    ("openat", Stop.OPEN), ("open", Stop.OPEN), ("creat", Stop.OPEN),
    ("newfstatat", Stop.PATH_QUERY), ("readlink", Stop.PATH_QUERY), ("access", Stop.PATH_QUERY),
    ("execve", Stop.EXEC), ("execveat", Stop.EXEC), ("clone", Stop.CLONE),
    ("kill", Stop.SIGNAL), ("tgkill", Stop.SIGNAL),
])
def test_decision_points_go_to_the_tracer(name, stop):
    assert action(name) == trace(stop)


@pytest.mark.parametrize("name", ["socket", "connect", "ptrace", "fork", "vfork", "mount",
                                  "unshare", "setns", "io_uring_setup", "bpf", "seccomp",
                                  "process_vm_writev", "unlink", "mkdir", "symlink",
                                  "userfaultfd", "modify_ldt", "memfd_create"])
def test_everything_else_is_forbidden(name):
    assert action(name) == trace(Stop.FORBIDDEN)


def test_unknown_numbers_are_forbidden():
    assert bpf.evaluate(FILTER, 999) == trace(Stop.FORBIDDEN)


@pytest.mark.parametrize("name,code", [("ioctl", errno.ENOTTY), ("clone3", errno.ENOSYS),
                                       ("setrlimit", errno.EPERM), ("setsid", errno.EPERM),
                                       ("sched_setaffinity", errno.EPERM)])
def test_harmless_refusals_are_errnos(name, code):
    assert action(name) == SECCOMP_RET_ERRNO | code


def test_a_policy_may_refuse_more_calls_with_an_errno():
    # Policy.refused_syscalls: the JVM's name-service socket fails quietly
    program = bpf.build_filter((), {"socket": errno.EACCES})
    assert action("socket", program=program) == SECCOMP_RET_ERRNO | errno.EACCES
    assert action("connect", program=program) == trace(Stop.FORBIDDEN)  # only what is listed
    assert action("socket") == trace(Stop.FORBIDDEN)  # not in the default filter
    for name in ("openat", "clone", "mmap", "write"):  # traced, checked, allowed
        with pytest.raises(ValueError, match="cannot be refused"):
            bpf.build_filter((), {name: errno.EACCES})
    with pytest.raises(ValueError, match="cannot be refused"):
        bpf.build_filter(("socket",), {"socket": errno.EACCES})


def test_path_queries_may_look_at_the_directories_above_allowed_paths():
    from sio.workers._engine.supervisor._decisions import _above

    roots = ("/usr/lib", "/proc/123")
    assert _above("/", roots) and _above("/usr", roots) and _above("/proc", roots)
    assert not _above("/usr/lib", roots)  # the root itself is inside, not above
    assert not _above("/us", roots) and not _above("/usr/share", roots)
    assert not _above("/proc/12", roots) and not _above("/etc", roots)


def test_other_architectures_and_x32_never_reach_the_number_checks():
    # i386 getpid is 20, which is x86-64 writev (allowed): the arch decides first
    assert bpf.evaluate(FILTER, 20, arch=AUDIT_ARCH_I386) == trace(Stop.FOREIGN_ABI)
    assert bpf.evaluate(FILTER, NUMBERS["write"] | bpf.X32_SYSCALL_BIT) == trace(Stop.X32)


def test_large_mappings_are_checked_unless_prot_none_or_fixed():
    mib = 1 << 20
    assert action("mmap", 0, 4096, 3) == SECCOMP_RET_ALLOW
    assert action("mmap", 0, 2 * mib, 3, 0x22) == SECCOMP_RET_ALLOW  # libc, a malloc'ed block
    assert action("mmap", 0, 4 * mib, 3, 0x22) == trace(Stop.MEMORY)
    assert action("mmap", 0, 64 * mib, 3) == trace(Stop.MEMORY)
    assert action("mmap", 0, 64 * mib, 0) == SECCOMP_RET_ALLOW  # PROT_NONE reservation
    # MAP_FIXED (0x10) replaces part of a mapping the program has (the
    # loader's segments inside its reservation): the tracer would allow it
    assert action("mmap", 1 << 30, 64 * mib, 3, 0x12) == SECCOMP_RET_ALLOW
    assert action("mmap", 0, 64 * mib, 3, 0x100022) == trace(Stop.MEMORY)  # FIXED_NOREPLACE
    assert action("mmap", 0, 1 << 40, 3) == trace(Stop.MEMORY)  # high half of the length
    assert action("mremap", 0, 4096, 8192) == SECCOMP_RET_ALLOW
    assert action("mremap", 0, 4096, 32 * mib) == trace(Stop.MEMORY)


def test_the_memory_margin_covers_every_unchecked_mapping():
    assert Policy().memory_margin_kib * 1024 >= bpf.LARGE_MAPPING
    Policy(memory_margin_kib=bpf.LARGE_MAPPING // 1024)
    with pytest.raises(ValueError, match="memory_margin_kib"):
        Policy(memory_margin_kib=bpf.LARGE_MAPPING // 1024 - 1)


def test_limits_can_be_read_but_not_set():
    assert action("prlimit64", 0, 3, 0, 0x7FFF0000) == SECCOMP_RET_ALLOW
    assert action("prlimit64", 0, 3, 0x7FFF0000, 0) == SECCOMP_RET_ERRNO | errno.EPERM
    assert action("prlimit64", 0, 3, 1 << 40, 0) == SECCOMP_RET_ERRNO | errno.EPERM
    assert action("getrlimit") == SECCOMP_RET_ALLOW


def test_prctl_and_fcntl_arguments():
    assert action("prctl", 15) == SECCOMP_RET_ALLOW  # PR_SET_NAME
    assert action("prctl", 22) == SECCOMP_RET_ERRNO | errno.EPERM  # PR_SET_SECCOMP
    assert action("fcntl", 1, 2) == SECCOMP_RET_ALLOW  # F_SETFD
    assert action("fcntl", 1, 8) == SECCOMP_RET_ERRNO | errno.EPERM  # F_SETOWN


@pytest.mark.parametrize("cmd", [5, 6, 7, 36, 37, 38])
def test_record_locks_are_refused(cmd):
    # F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW
    assert action("fcntl", 0, cmd, 0x1000) == SECCOMP_RET_ERRNO | errno.ENOLCK
    assert action("flock", 0, 1) == SECCOMP_RET_ERRNO | errno.ENOLCK


def test_o_append_can_be_set_but_not_taken_off():
    o_append, o_nonblock = 0o2000, 0o4000
    assert action("fcntl", 1, 4, o_append | o_nonblock) == SECCOMP_RET_ALLOW  # F_SETFL
    assert action("fcntl", 1, 4, o_nonblock) == trace(Stop.SETFL)  # the tracer adds it
    assert action("fcntl", 1, 3) == SECCOMP_RET_ALLOW  # F_GETFL
    assert action("pwritev2", 1, 0, 1, 0, 0, 0x20) == SECCOMP_RET_ERRNO | errno.EPERM
    assert action("pwritev2", 1, 0, 1, 0, 0, 0x4) == SECCOMP_RET_ALLOW  # RWF_DSYNC
    assert action("ftruncate", 1, 0) == SECCOMP_RET_ERRNO | errno.EPERM


def test_extra_syscalls():
    program = bpf.build_filter(["socket", "ioctl"])
    assert action("socket", program=program) == SECCOMP_RET_ALLOW
    assert action("ioctl", program=program) == SECCOMP_RET_ALLOW
    with pytest.raises(ValueError, match="decided by the tracer"):
        bpf.build_filter(["openat"])
    with pytest.raises(ValueError, match="unknown"):
        bpf.build_filter(["no_such_call"])


def test_assembler_checks_its_jumps():
    asm = bpf.Assembler()
    asm.label("back")
    asm.load(0)
    asm.jump("==", 1, true="back")
    with pytest.raises(ValueError, match="backward"):
        asm.assemble()
    asm = bpf.Assembler()
    asm.jump("==", 1, true="nowhere")
    with pytest.raises(ValueError, match="undefined"):
        asm.assemble()
    asm = bpf.Assembler()
    asm.jump("==", 1, true="far")
    for _ in range(300):
        asm.load(0)
    asm.label("far")
    asm.ret(0)
    with pytest.raises(ValueError, match="out of range"):
        asm.assemble()


def test_filter_is_well_formed():
    assert len(FILTER) % 8 == 0 and len(FILTER) // 8 < 4096
    # every syscall number of the table gets some action
    for nr in NUMBERS.values():
        assert bpf.evaluate(FILTER, nr) != 0



def _expected(nr: int, extra: tuple[str, ...] = ()) -> int | None:
    """The action the rule tables give a call number, argument checks aside
    (None for those): the first of ALLOWED (+ extra), REFUSED, TRACED."""
    names = {v: k for k, v in NUMBERS.items()}
    name = names.get(nr)
    if name in bpf.ALLOWED or name in extra:
        return SECCOMP_RET_ALLOW
    if name in bpf.ARGUMENT_CHECKED:
        return None
    if name in bpf.REFUSED:
        return SECCOMP_RET_ERRNO | bpf.REFUSED[name]
    if name in bpf.TRACED:
        return trace(bpf.TRACED[name])
    return trace(Stop.FORBIDDEN)


@pytest.mark.parametrize("extra", [(), ("socket", "ioctl", "setsid")])
def test_every_number_gets_the_action_of_its_table(extra):
    """The number search (a binary tree over runs of numbers) agrees with
    the tables for every number, including the ends of each run."""
    program = bpf.build_filter(extra)
    for nr in [*range(0, 1100), 0x3FFFFFFF]:
        expected = _expected(nr, extra)
        if expected is not None:
            assert bpf.evaluate(program, nr) == expected, (nr, extra)


def _steps(program: bytes, nr: int) -> int:
    """How many instructions the filter runs for call ``nr`` (no arguments)."""
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    data = struct.pack("<iIQ6Q", nr, bpf.AUDIT_ARCH_X86_64, 0, *[0] * 6)
    pc = acc = steps = 0
    while True:
        op, jt, jf, k = code[pc]
        pc, steps = pc + 1, steps + 1
        if op == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == 0x05:
            pc += k
        elif op in (0x15, 0x25, 0x35):
            hit = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k}[op]
            pc += jt if hit else jf
        else:
            return steps


def test_numbers_are_decided_in_a_few_steps():
    """The kernel runs the filter for every call number when it installs it
    (its action cache): a search, not a list of ~200 comparisons, keeps
    that per-run set-up cheap."""
    argument_checked = {NUMBERS[n] for n in bpf.ARGUMENT_CHECKED}
    worst = max(_steps(FILTER, nr) for nr in range(0, 1100) if nr not in argument_checked)
    assert worst <= 16

# --- the verdict mapping ------------------------------------------------------

def outcome(**kw) -> Outcome:
    fields = {"exit_code": 0, "signal": None, "cpu_time_ms": 5, "wall_time_ms": 7}
    fields.update(kw)
    return Outcome(**fields)


@pytest.mark.parametrize("kw,expected", [
    ({}, ("OK", "ok")),
    ({"exit_code": 3}, ("RE", "runtime error 3")),
    ({"exit_code": None, "signal": 11}, ("RE", "process exited due to signal 11")),
    ({"exit_code": None, "signal": 9, "killed": KillReason.CPU_TIME},
     ("TLE", "time limit exceeded")),
    ({"exit_code": None, "signal": 9, "killed": KillReason.WALL_TIME},
     ("TLE", "real time limit exceeded")),
    ({"exit_code": 0, "killed": KillReason.MEMORY}, ("MLE", "memory limit exceeded")),
    ({"exit_code": None, "signal": 25, "killed": KillReason.OUTPUT},
     ("OLE", "output limit exceeded")),
    ({"exit_code": None, "signal": 9, "killed": KillReason.SYSCALL, "violation": "socket"},
     ("RV", "intercepted forbidden syscall socket")),
    ({"system_error": "cannot start ./x: Exec format error"},
     ("SE", "cannot start ./x: Exec format error")),
])
def test_verdict(kw, expected):
    assert verdict(outcome(**kw)) == expected


def test_verdict_ignore_return():
    assert verdict(outcome(exit_code=1), ignore_return=True) == ("OK", "ok")
    assert verdict(outcome(exit_code=None, signal=6), ignore_return=True)[0] == "RE"


def test_policy_validation():
    with pytest.raises(ValueError):
        Policy(max_threads=0)
    assert Policy().allow_local_open is False


def test_capabilities_describe_in_plain_words():
    good = Capabilities(machine="x86_64", seccomp=True, ptrace=True, landlock_abi=7,
                        namespaces=("net", "ipc", "uts"), root=True)
    assert good.usable and "Landlock (ABI 7)" in good.describe()
    bad = Capabilities(machine="aarch64", seccomp=False, ptrace=False, landlock_abi=0,
                       namespaces=(), root=False)
    assert not bad.usable
    assert "NOT available" in bad.describe() and "x86-64 only" in bad.missing()


#: What the spawner process must not load: every module it holds makes each
#: fork of it slower (see docs/supervisor.rst, Architecture). The worker-side
#: engine (client, records, policy, the unprotected engine), the contract
#: and job layers, and the heavier parts of the standard library.
SPAWNER_MUST_NOT_IMPORT = (
    "sio.workers._engine.supervisor._client", "sio.workers._engine.supervisor.policy",
    "sio.workers._engine.supervisor.capabilities", "sio.workers._engine.types",
    "sio.workers._engine.process", "sio.workers.executors", "sio.workers.verdicts",
    "sio.workers.results", "sio.workers.runner", "sio.workers.ft", "sio.executors",
    "sio.compilers", "sio.celery", "sio.workflows", "sio.sioworkersd", "celery", "kombu",
    "filetracker", "json", "pickle", "typing", "enum", "dataclasses", "logging",
    "subprocess", "threading", "signal", "socket", "re", "inspect", "pathlib", "shutil",
    "tempfile",
)


def test_spawner_imports_only_what_it_needs():
    # The module the worker starts the spawner with (see _client._BOOT), in
    # a fresh interpreter started the same way (-I -S).
    import re
    import subprocess
    import sys

    from sio.workers._engine.supervisor import _client

    module = re.search(r"from (\S+) import main", _client._BOOT).group(1)
    code = ("import sys; base = set(sys.modules); sys.path.insert(0, sys.argv[1]); "
            f"__import__({module!r}); print(*sorted(set(sys.modules) - base))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, _client._PACKAGE_ROOT],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    loaded = set(out.split())
    assert module in loaded
    bad = sorted(m for m in loaded
                 if any(m == b or m.startswith(b + ".") for b in SPAWNER_MUST_NOT_IMPORT))
    assert bad == []
    # Of this project, only the engine's supervisor package and the rlimits
    # it shares with the unprotected engine (and the package initialisers
    # on the way to them, which stay tiny on purpose).
    ours = {m for m in loaded if m == "sio" or m.startswith("sio.")}
    assert ours - {"sio", "sio.workers", "sio.workers.errors", "sio.workers._engine",
                   "sio.workers._engine.rlimits"} <= {
        m for m in ours if m.startswith("sio.workers._engine.supervisor")}
