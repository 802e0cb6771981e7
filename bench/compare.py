"""Benchmark of the native default comparator (oicompare rules) and the
diff -b equivalent on a 50 MB output.

Baseline, measured in the same run on the same files: ``cmp`` (a byte-exact
comparison in C, the least any comparator must do). Cases:

* output equal to the hint byte for byte (the common OK case);
* output differing only in the last token (a WA found at the very end);
* output equal to the hint under the rules but with every separator changed
  (CRLF and double spaces), which defeats byte-level shortcuts.

Prints each time as a ratio to ``cmp`` on the same pair (for the last case,
whose files differ in size so that ``cmp`` stops at once, to ``cmp`` on the
equal pair), and MB/s of hint. The first line says whether the comparators'
C helper (``sio/executors/_compare.c``) is in use or its pure-Python
fallback; ``python bench/compare.py --python`` measures the fallback.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sio.executors import _compare  # noqa: E402
from sio.executors.checker import compare_outputs, diff_b_equal  # noqa: E402

SIZE = 50 * 1000 * 1000
REPEAT = 3


def _best(f) -> float:
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def _write(path: Path, rng: random.Random) -> None:
    # lines of 10 random numbers: a typical judge output
    lines = [b" ".join(str(rng.randrange(10**9)).encode() for _ in range(10)) + b"\n"
             for _ in range(20000)]
    block = b"".join(lines)
    with open(path, "wb") as f:
        written = 0
        while written < SIZE:
            f.write(block)
            written += len(block)


def main() -> int:
    cmp = shutil.which("cmp")
    if cmp is None:
        print("cmp not found (Debian package diffutils)")
        return 0
    if "--python" in sys.argv[1:]:
        _compare._native[:] = [None]
    native = _compare.native_helper() is not None
    print("canonical form: " + ("the C helper" if native else "pure Python (no C helper)"))
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as d:
        hint = Path(d, "hint")
        _write(hint, rng)
        data = hint.read_bytes()
        same, last, spaced = Path(d, "same"), Path(d, "last"), Path(d, "spaced")
        same.write_bytes(data)
        last.write_bytes(data[:-2] + (b"0" if data[-2:-1] != b"0" else b"1") + b"\n")
        spaced.write_bytes(data.replace(b" ", b"  ").replace(b"\n", b"\r\n"))
        del data
        mb = hint.stat().st_size / 1e6
        print(f"hint: {mb:.1f} MB; best of {REPEAT}")
        print(f"{'case':<34}{'cmp s':>8}{'native s':>10}{'ratio':>8}{'MB/s':>8}")
        for name, out, expect_ok in [("equal bytes", same, True), ("differs at the end", last, False),
                                     ("equal, separators changed", spaced, True)]:
            if out is not spaced:
                base = _best(lambda: subprocess.run([cmp, "-s", str(hint), str(out)]))
            result = compare_outputs(hint, out)
            assert result.ok is expect_ok, result
            t = _best(lambda: compare_outputs(hint, out))
            print(f"{'oicompare rules, ' + name:<34}{base:>8.3f}{t:>10.3f}{t / base:>7.1f}x"
                  f"{mb / t:>8.0f}")
            assert diff_b_equal(hint, out) is expect_ok
            t = _best(lambda: diff_b_equal(hint, out))
            print(f"{'diff -b, ' + name:<34}{base:>8.3f}{t:>10.3f}{t / base:>7.1f}x{mb / t:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
