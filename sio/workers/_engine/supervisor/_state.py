"""A run's request and state, shared by the modules of its concerns
(:mod:`._setup`, :mod:`._watchdog`, :mod:`._decisions`, :mod:`._run`),
which each add their methods to :class:`RunState` as a base class.
"""

from __future__ import annotations

import os
import resource

TYPE_CHECKING = False  # typing is not imported at run time (see _spawner)
if TYPE_CHECKING:
    from sio.workers._engine.supervisor._spawner import Spawner


class RunState:
    """One supervised run of one program: what it was asked and where it is."""

    def __init__(self, spawner: Spawner, request: dict, fds: list[int]) -> None:
        self.sp = spawner
        self.argv: list[bytes] = request["argv"]
        self.exe: str = request["exe"]
        # Resolved: with the view, the job directory is bound at this path,
        # and the tracer compares the program's paths to it as they are.
        self.cwd: str = os.path.realpath(request["cwd"])
        self.env: list[bytes] = request["env"]
        #: Limits fields (cpu_time_ms, wall_time_ms, address_space_kib,
        #: output_bytes, stack_kib) and Policy fields, as dicts
        self.limits: dict = request["limits"]
        self.policy: dict = request["policy"]
        self.stdio_modes: tuple[str, str, str] = request["stdio"]
        self.given_fds = list(fds)
        if not spawner.usable:
            raise RuntimeError("this machine cannot supervise programs")
        policy = self.policy
        self.allow_local_open: bool = policy["allow_local_open"]
        # .get: a worker of an older version may send a policy without them
        self.quiet_denials: bool = policy.get("quiet_denials", False)
        self.read_own_proc: bool = policy.get("read_own_proc", False)
        #: Policy.fake_time ("off", "zero", "random"); the virtual clock is
        #: in _decisions (Decisions.__init__)
        self.fake_time: str = policy.get("fake_time", "off")
        #: the seccomp filter's key (see Spawner.seccomp_filter)
        self.filter_key: tuple = (
            tuple(policy["extra_syscalls"]),
            tuple((name, code) for name, code in policy.get("refused_syscalls", ())),
            self.fake_time != "off")
        self.max_threads: int = policy["max_threads"] if spawner.landlock_abi else 1
        self.drop_uid: bool = spawner.caps["root"] and policy["drop_uid"]
        roots = list(spawner.system_roots)
        # A read path that does not exist stays allowed as named: opening
        # it fails in the kernel (ENOENT), like the probes of runtimes for
        # optional files (CPython's pyvenv.cfg); Landlock has no rule for it.
        for p in policy["read_paths"]:
            roots.append(os.path.abspath(p))
            if os.path.exists(p):
                roots.append(os.path.realpath(p))
        if self.allow_local_open:
            roots.append(os.path.realpath(self.cwd))
        self.read_roots = tuple(dict.fromkeys(roots))
        lim = self.limits
        self.cpu_limit_ns = (None if lim["cpu_time_ms"] is None
                             else lim["cpu_time_ms"] * 1_000_000)
        self.wall_limit_s = (None if lim["wall_time_ms"] is None
                             else lim["wall_time_ms"] / 1000)
        self.mem_limit_kib: int | None = lim["address_space_kib"]
        self.output_limit: int | None = lim["output_bytes"]
        # How much of a captured stream to keep: Limits.capture_bytes where
        # the record has it (newer engine types), else the output limit.
        capture = lim.get("capture_bytes")
        self.capture_limit: int | None = self.output_limit if capture is None else capture
        # run state
        self.leader = 0
        #: the view's root, where the program is chrooted, or None
        self.view_root: str | None = spawner.view.root if spawner.view is not None else None
        self.tids: set[int] = set()
        self.pending_clones: set[int] = set()
        self.exec_allowed = False
        self.fork_time = 0.0
        self.exec_time: float | None = None
        self.exec_cpu_ns = 0
        self.last_memory_sample = 0.0
        self.last_cpu_ns = 0
        self.leader_status: int | None = None
        self.end_time: float | None = None  # time.monotonic() when the leader was reaped
        self.rusage: resource.struct_rusage | None = None
        self.killed: str | None = None
        self.violation: str | None = None
        self.mem_peak_kib = 0
        self.rss_peak_kib = 0
        self.stops = 0
        #: time.monotonic() at which the loop must run the watchdog again
        self.check_at = 0.0
        self.captures: dict[int, str] = {}  # open read end -> stream name
        self.captured: dict[str, bytearray] = {}
        self.written: dict[str, int] = {}  # bytes read from each captured stream
        self.truncated = False
        self.system_error: str | None = None

