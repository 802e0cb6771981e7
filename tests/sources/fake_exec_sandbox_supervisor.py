"""A stand-in for the original exec-sandbox's ``bin/supervisor`` (the real
32-bit binary lived on a download server that cannot be reached), speaking
SIO2's supervisor protocol:

    supervisor [-q] [-f FD] [-l] [-R] [--] PROGRAM [ARGS...]

Limits come from the environment: MEM_LIMIT (KiB), TIME_LIMIT (ms),
OUT_LIMIT (bytes), HARD_LIMIT (s, optional). The program runs with
RLIMIT_AS, RLIMIT_CPU and RLIMIT_FSIZE set from them and a wall-clock limit;
the report goes to descriptor FD as two lines:

    __RESULT__ <code> <time_ms> 0 <mem_kib> 0
    <result string>

with code 0 ok, 120 OLE, 124 MLE, 125 TLE, 200 + N for exit status N,
the signal number for a signal. No isolation at all: it only has to give
the executor what the real binary would.

Test hooks (environment): FAKE_SUPERVISOR_LOG=<path> appends one JSON line
with the options, limits and program; FAKE_SUPERVISOR_REPORT=<text> writes
that text as the report instead of running anything, and exits with
FAKE_SUPERVISOR_EXIT (default 0); FAKE_SUPERVISOR_HANG=1 never ends.

The test builds the sandbox with this file as ``bin/supervisor`` behind a
``#!<python> -IS`` line.
"""

import json
import os
import resource
import signal
import sys
import time


def main(argv):
    args = list(argv)
    options = []
    report_fd = 2
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        if option == "-f":
            report_fd = int(args.pop(0))
            options += ["-f", str(report_fd)]
        elif option in ("-q", "-l", "-R"):
            options.append(option)
        else:
            sys.stderr.write(f"supervisor: unknown option {option}\n")
            return 2
    env = os.environ
    limits = {k: env.get(k) for k in ("MEM_LIMIT", "TIME_LIMIT", "OUT_LIMIT", "HARD_LIMIT")}
    if env.get("FAKE_SUPERVISOR_LOG"):
        with open(env["FAKE_SUPERVISOR_LOG"], "a") as log:
            log.write(json.dumps({"options": options, "limits": limits, "program": args}) + "\n")
    if env.get("FAKE_SUPERVISOR_HANG"):
        while True:
            time.sleep(60)
    if "FAKE_SUPERVISOR_REPORT" in env:
        os.write(report_fd, env["FAKE_SUPERVISOR_REPORT"].encode())
        return int(env.get("FAKE_SUPERVISOR_EXIT", "0"))

    time_limit_ms = int(limits["TIME_LIMIT"])
    mem_kib = int(limits["MEM_LIMIT"])
    out_bytes = int(limits["OUT_LIMIT"])
    hard_s = int(limits["HARD_LIMIT"]) if limits["HARD_LIMIT"] else None
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_fd)  # the program must not write the report
            # Python ignores these; the program must get the default actions
            # (SIGXFSZ is how it is stopped at the output limit).
            for number in (signal.SIGXFSZ, signal.SIGPIPE):
                signal.signal(number, signal.SIG_DFL)
            cpu_s = -(-time_limit_ms // 1000)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
            resource.setrlimit(resource.RLIMIT_AS, (mem_kib * 1024, mem_kib * 1024))
            resource.setrlimit(resource.RLIMIT_FSIZE, (out_bytes, out_bytes))
            os.execv(args[0], args)
        finally:
            os._exit(127)
    real_time_killed = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if hard_s is not None and time.monotonic() - start > hard_s:
            os.kill(pid, signal.SIGKILL)
            real_time_killed = True
            done, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.005)
    time_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    if real_time_killed:
        code, message = 125, "real time limit exceeded"
    elif time_ms > time_limit_ms or (os.WIFSIGNALED(status)
                                     and os.WTERMSIG(status) == signal.SIGXCPU):
        code, message = 125, "time limit exceeded"
    elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXFSZ:
        code, message = 120, "output limit exceeded"
    elif os.WIFSIGNALED(status):
        code = os.WTERMSIG(status)
        message = f"process exited due to signal {code}"
    elif os.WEXITSTATUS(status) == 0 or "-R" in options:
        code, message = 0, "ok"
    else:
        code = 200 + os.WEXITSTATUS(status)
        message = f"runtime error {os.WEXITSTATUS(status)}"
    os.write(report_fd, f"__RESULT__ {code} {time_ms} 0 {usage.ru_maxrss} 0\n{message}\n"
             .encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
