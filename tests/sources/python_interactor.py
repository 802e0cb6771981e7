# An interactor in Python, the twin of judge_interactor.c's modes 0, 1 and 3:
# ./soc n r_0 w_0 ... r_{n-1} w_{n-1}, its stdin (the test) "x payload mode".
# It sends process i the query x+i and expects "2(x+i) i".
# mode 0: normal; 1: crashes (an exception) at once; 3: a correct run gets
# the partial score 1/3.
import os
import sys

n = int(sys.argv[1])
x, _payload, mode = map(int, sys.stdin.read().split())
if mode == 1:
    raise RuntimeError("the interactor crashed")
ins = [os.fdopen(int(sys.argv[2 + 2 * i]), "r") for i in range(n)]
outs = [os.fdopen(int(sys.argv[3 + 2 * i]), "w") for i in range(n)]
for i in range(n):
    outs[i].write(f"{x + i}\n")
    outs[i].flush()
wrong = -1
for i in range(n):
    words = ins[i].readline().split()
    if not words:
        print(f"WRONG\nno answer from process {i}")
        sys.exit(0)
    if wrong < 0 and words != [str(2 * (x + i)), str(i)]:
        wrong = i
if wrong >= 0:
    print(f"WRONG\nwrong answer from process {wrong}")
elif mode == 3:
    print("OK\npartial\n1/3")
else:
    print("OK")
