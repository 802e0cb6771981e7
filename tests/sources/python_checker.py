# A custom checker in Python, run as chk in out hint; judge_checker_hostile.c
# is its C twin for the hostile cases. What it does is driven by the hint:
#   "READ"   opens /etc/passwd: OK with its first line as the comment;
#   "WRITE"  creates the file written.txt: OK;
#   "FORK"   starts a process (/bin/true): OK;
#            (a refused call: WRONG, "<call> failed: <errno name>", exit 1)
#   "PART"   OK, "half right", 50 when out is 42;
#   anything else: OK when out has the hint's tokens, else WRONG and
#   "expected <first token of hint>, got <first token of out>", exit 1.
import errno
import os
import sys

inp, out, hint = sys.argv[1:4]
expected = open(hint).read()
got = open(out).read()
open(inp).close()


def refused(call, e):
    print(f"WRONG\n{call} failed: {errno.errorcode.get(e.errno, e.errno)}")
    sys.exit(1)


if expected == "READ\n":
    try:
        line = open("/etc/passwd").readline()
    except OSError as e:
        refused("open", e)
    print("OK\n" + line.strip())
elif expected == "WRITE\n":
    try:
        open("written.txt", "w").write("pwned\n")
    except OSError as e:
        refused("open", e)
    print("OK")
elif expected == "FORK\n":
    try:
        pid = os.fork()
    except OSError as e:
        refused("fork", e)
    if pid == 0:
        os.execv("/bin/true", ["true"])
    os.waitpid(pid, 0)
    print("OK")
elif expected == "PART\n":
    print("OK\nhalf right\n50" if got.split() == ["42"] else "WRONG\nnot even half")
elif got.split() == expected.split():
    print("OK")
else:
    print("WRONG\nexpected " + expected.split()[0] + ", got " + (got.split() or ["nothing"])[0])
    sys.exit(1)
