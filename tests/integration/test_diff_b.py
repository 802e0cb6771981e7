"""The diff -b equivalent against the real GNU ``diff -b -q`` on many small
random files (property style)."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from sio.executors import _compare
from sio.executors.checker import diff_b_equal
from tests.support import missing

pytestmark = pytest.mark.integration

# Pieces that hit every rule: runs of each kind of whitespace, newlines,
# words that differ by one letter, NUL (not whitespace for diff).
PIECES = [b"a", b"b", b"ab", b"1", b" ", b"  ", b"\t", b"\v", b"\f", b"\r", b"\n", b"\n\n",
          b" \n", b"\r\n", b"\x00", b"\xff"]


def _random_text(rng: random.Random) -> bytes:
    return b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 9)))


def _variant(rng: random.Random, data: bytes) -> bytes:
    """Something likely to be diff -b equal or nearly so."""
    out = bytearray()
    for c in data:
        if c in b" \t\v\f\r" and rng.random() < 0.5:
            out += rng.choice([b" ", b"\t", b"  ", b"\t \f", b""])
        else:
            out.append(c)
    if rng.random() < 0.3:
        out += rng.choice([b"\n", b" ", b"\n\n", b"\r", b" \n"])
    return bytes(out)


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_diff_b_equal_matches_gnu_diff(chunk, tmp_path, monkeypatch, comparator_impl):
    diff = shutil.which("diff")
    if diff is None:
        missing("GNU diff (Debian package diffutils)")
    monkeypatch.setattr(_compare, "CHUNK_SIZE", chunk)
    rng = random.Random(chunk)
    a, b = tmp_path / "a", tmp_path / "b"
    seen = {True: 0, False: 0}
    for _ in range(600):
        x = _random_text(rng)
        y = _variant(rng, x) if rng.random() < 0.6 else _random_text(rng)
        a.write_bytes(x)
        b.write_bytes(y)
        # -a: treat the files as text even with a NUL in them, which is what
        # diff_b_equal does (plain diff compares "binary" files byte-exactly).
        rc = subprocess.run([diff, "-a", "-b", "-q", str(a), str(b)],
                            stdout=subprocess.DEVNULL).returncode
        assert rc in (0, 1)
        assert diff_b_equal(a, b) is (rc == 0), (x, y)
        seen[rc == 0] += 1
    # the generator must produce both outcomes in good numbers
    assert min(seen.values()) > 100, seen
