"""Cost of the supervised engine against bare runs measured in the same run.

1. Per run: a trivial static program, 300 runs each way, interleaved; the
   median overhead of ``run_supervised`` over a bare spawn (posix_spawn +
   wait), and ``bwrap --unshare-all`` when bubblewrap is installed (this
   benchmark installs nothing). Target: <= bare + 1.0 ms, below bwrap.
   Then the trivial supervised runs per second one worker process makes one
   after the other (target: >= 1000); the cost of the private view alone:
   the same runs with ``SIO_SUPERVISOR_ISOLATION=no-view``, in alternating
   blocks, and the difference of the medians; and the namespace set-up per
   run (binding a new job directory against reusing the last one's binds).
2. Syscall storm: 10^6 one-byte write()s to /dev/null. Target: <= 1.25x bare.
3. Ordinary I/O: 2*10^6 printf() lines into a file. Target: <= 1.05x bare.
4. Cost of one traced stop: 20 000 calls that stop in the tracer (``kill``
   of itself, a signal decision; ``openat`` of an allowed path, an open
   decision), supervised minus bare, per call; and ``newfstatat`` of an
   allowed path, a path query, which stops only without the private view
   (with it, the kernel answers). No target: the figures to watch when the
   tracer changes.

Run: ``.venv/bin/python bench/supervisor.py`` (needs gcc). Exit status 0;
the figures are printed, not asserted (the machine is shared and noisy).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sio.workers._engine.supervisor import Policy, probe, run_supervised  # noqa: E402
from sio.workers.verdicts import verdict  # noqa: E402
from sio.workers._engine.types import Limits  # noqa: E402

PROGRAMS = {
    "trivial": "int main(void) { return 0; }\n",
    "writes": ('#include <unistd.h>\n'
               'int main(void) { for (int i = 0; i < 1000000; i++) write(1, "x", 1); '
               'return 0; }\n'),
    "printf": ('#include <stdio.h>\n'
               'int main(void) { for (int i = 0; i < 2000000; i++) printf("line %d\\n", i); '
               'return 0; }\n'),
    "kills": ('#include <signal.h>\n#include <unistd.h>\n'
              'int main(void) { pid_t me = getpid(); '
              'for (int i = 0; i < 20000; i++) kill(me, 0); return 0; }\n'),
    "opens": ('#include <fcntl.h>\n#include <unistd.h>\n'
              'int main(void) { for (int i = 0; i < 20000; i++) '
              'close(openat(AT_FDCWD, "/usr/lib", O_RDONLY | O_DIRECTORY)); '
              'return 0; }\n'),
    "stats": ('#include <fcntl.h>\n#include <sys/stat.h>\n'
              'int main(void) { struct stat st; '
              'for (int i = 0; i < 20000; i++) fstatat(AT_FDCWD, "/usr/lib", &st, 0); '
              'return 0; }\n'),
}
#: calls that (may) stop in the tracer, in each of the "kills", "opens" and
#: "stats" programs
STOPPING_CALLS = 20000
LIMITS = Limits(cpu_time_ms=10000, wall_time_ms=60000, address_space_kib=262144,
                output_bytes=1 << 30)


def compile_all(where: Path) -> dict[str, str]:
    paths = {}
    for name, source in PROGRAMS.items():
        src = where / f"{name}.c"
        src.write_text(source)
        exe = where / name
        subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(src)], check=True)
        paths[name] = str(exe)
    return paths


def bare(argv: list[str], stdout: int) -> float:
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, {}, file_actions=[(os.POSIX_SPAWN_DUP2, stdout, 1)])
    os.waitpid(pid, 0)
    return time.perf_counter() - start


def supervised(argv: list[str], cwd: str, stdout: int) -> float:
    start = time.perf_counter()
    outcome = run_supervised(argv, cwd=cwd, env={}, stdout=stdout, limits=LIMITS,
                             policy=Policy())
    elapsed = time.perf_counter() - start
    if verdict(outcome) != ("OK", "ok"):
        raise SystemExit(f"{argv[0]}: unexpected {verdict(outcome)} {outcome}")
    return elapsed


def bwrap(argv: list[str], stdout: int) -> float:
    start = time.perf_counter()
    subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev",
                    "--proc", "/proc", *argv], stdout=stdout, check=True)
    return time.perf_counter() - start


def view_cost(trivial: str, cwd: str, null: int, has_view: bool) -> None:
    """The per-run cost of the private view: the same trivial runs with and
    without it (spawners restarted at each switch, blocks alternated)."""
    from sio.workers._engine.supervisor import _client

    if not has_view:
        print("private view: not available here, its cost not measured")
        return
    times: dict[str, list[float]] = {"view": [], "no-view": []}
    saved = os.environ.get(_client.ISOLATION_SETTING)
    try:
        for _ in range(6):
            for mode in ("view", "no-view"):
                os.environ[_client.ISOLATION_SETTING] = "best" if mode == "view" else mode
                _client._shutdown()
                for _ in range(5):  # the new spawner's start-up
                    supervised([trivial], cwd, null)
                times[mode] += [supervised([trivial], cwd, null) for _ in range(50)]
    finally:
        if saved is None:
            os.environ.pop(_client.ISOLATION_SETTING, None)
        else:
            os.environ[_client.ISOLATION_SETTING] = saved
        _client._shutdown()
    v, n = statistics.median(times["view"]), statistics.median(times["no-view"])
    print(f"with the private view {ms(v)} per run, without {ms(n)} (medians of 300, "
          f"alternating blocks; without the view each run's stub is started by "
          f"posix_spawn from the spawner, with it forked by the namespace's small init)")
    # The namespace set-up proper: the same directory again reuses the binds
    # of the last run; another directory is bound (and the last one's
    # unbound) before the run. Two job directories, alternated.
    dirs = [tempfile.mkdtemp(dir=cwd) for _ in range(2)]
    exes = []
    for d in dirs:
        shutil.copy(trivial, d)
        exes.append(os.path.join(d, os.path.basename(trivial)))
    same = [supervised([exes[0]], dirs[0], null) for _ in range(200)]
    other = [supervised([exes[i % 2]], dirs[i % 2], null) for i in range(200)]
    s, o = statistics.median(same), statistics.median(other)
    print(f"namespace set-up per run: binding a new job directory costs {ms(o - s)} "
          f"(a new directory each run {ms(o)}, the same one {ms(s)}; medians of 200)")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    caps = probe()
    print(caps.describe())
    if not caps.usable:
        return 0
    if shutil.which("gcc") is None:
        print("gcc is not installed: nothing to measure")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        progs = compile_all(Path(tmp))
        null = os.open(os.devnull, os.O_WRONLY)
        has_bwrap = shutil.which("bwrap") is not None
        runs = {"bare": [], "supervised": [], "bwrap": []}
        for _ in range(5):  # warm-up (spawner start, page cache)
            supervised([progs["trivial"]], tmp, null)
        for _ in range(300):
            runs["bare"].append(bare([progs["trivial"]], null))
            runs["supervised"].append(supervised([progs["trivial"]], tmp, null))
            if has_bwrap:
                runs["bwrap"].append(bwrap([progs["trivial"]], null))
        b, s = statistics.median(runs["bare"]), statistics.median(runs["supervised"])
        print(f"per run (300 runs, medians): bare {ms(b)}, supervised {ms(s)} "
              f"= bare + {ms(s - b)} ({s / b:.2f}x bare); target: <= bare + 1.0 ms")
        if has_bwrap:
            w = statistics.median(runs["bwrap"])
            print(f"  bwrap --unshare-all {ms(w)} = bare + {ms(w - b)}; "
                  f"supervised / bwrap = {s / w:.2f}")
        else:
            print("  bwrap is not installed: not compared")
        # One worker process, runs back to back (what a worker thread does).
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            supervised([progs["trivial"]], tmp, null)
            count += 1
        rate = count / (time.perf_counter() - start)
        print(f"trivial supervised runs per second from one worker process: {rate:.0f} "
              f"({1000 / rate:.2f} ms each, {count} runs in 2 s); target: >= 1000")
        view_cost(progs["trivial"], tmp, null, caps.view)

        for name, label, target, out_path in (
                ("writes", "10^6 one-byte writes to /dev/null", 1.25, None),
                ("printf", "2*10^6 printf lines to a file", 1.05, Path(tmp) / "out.txt")):
            times = {"bare": [], "supervised": []}
            for _ in range(5):
                for mode in ("bare", "supervised"):
                    fd = (os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                          if out_path else null)
                    try:
                        times[mode].append(bare([progs[name]], fd) if mode == "bare"
                                           else supervised([progs[name]], tmp, fd))
                    finally:
                        if out_path:
                            os.close(fd)
            b, s = statistics.median(times["bare"]), statistics.median(times["supervised"])
            print(f"{label} (medians of 5): bare {ms(b)}, supervised {ms(s)} = "
                  f"{s / b:.3f}x bare; target: <= {target}x")

        view = "in the private view" if caps.view else "without the private view"
        for name, label in (("kills", "kill(self, 0)"),
                            ("opens", "openat(/usr/lib) + close"),
                            ("stats", f"newfstatat(/usr/lib), {view}")):
            times = {"bare": [], "supervised": []}
            for _ in range(5):
                times["bare"].append(bare([progs[name]], null))
                times["supervised"].append(supervised([progs[name]], tmp, null))
            b, s = statistics.median(times["bare"]), statistics.median(times["supervised"])
            print(f"one call that may stop, {label} (medians of 5 x {STOPPING_CALLS}): "
                  f"{(s - b) / STOPPING_CALLS * 1e6:.1f} us above bare")
        os.close(null)
    return 0


if __name__ == "__main__":
    sys.exit(main())
