# A Python submission that does what its first argument says (the exec job's
# extra_execution_args); with none, prints the sum of the two input numbers.
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "sum"
if mode == "sum":
    a, b = map(int, input().split())
    print(a + b)
elif mode == "wrong":
    a, b = map(int, input().split())
    print(a + b + 1)
elif mode == "loop":
    while True:
        pass
elif mode == "memory":
    hoard = list(range(10 ** 8))
    print(len(hoard))
elif mode == "raise":
    raise ValueError("a runtime error")
elif mode == "read":
    print(open(sys.argv[2] if len(sys.argv) > 2 else "/etc/passwd").readline())
elif mode == "write":
    open(sys.argv[2] if len(sys.argv) > 2 else "written.txt", "w").write("pwned\n")
elif mode == "fork":
    import os

    os.fork()
