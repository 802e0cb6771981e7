"""Streaming output comparators (private; the public face is :mod:`sio.executors.checker`).

Both comparators work the same way: each file is turned, chunk by chunk, into
a *canonical form* in which every difference the rules ignore has been erased
(runs of whitespace become one space, spaces next to a newline go, ...), and
the two canonical streams are compared byte for byte. Equal canonical streams
mean equal files under the rules; the first differing canonical byte is where
the first difference is, and only there do we look at tokens, to word the
message.

Why this shape: comparing outputs is on the hot path of every test, and
outputs can be hundreds of megabytes. A chunk goes into canonical form in one
pass of a small C function (``_compare.c``, built with the system C compiler
on first use like the engine's helpers, :mod:`sio.workers._engine.build`,
and called through :mod:`ctypes`); without a C compiler the same form comes
from a few C-level passes of ``bytes`` methods (``translate``, ``replace``),
several times slower on outputs whose whitespace differs from the hint's.
A chunk that is in canonical form already (most hints: one space between
words, no trailing whitespace) is recognised by a vectorized check and used
as it is, without a copy. Comparing canonical chunks is ``startswith`` (a
``memcmp``), nothing is split into Python objects per token, and memory use
is a few chunks whatever the file size.

Canonical form, "oicompare" mode (separators space, TAB, VT, CR, NUL):
words separated by exactly one space, ``\\n`` kept, no space at the start of
a line or before ``\\n``; trailing newlines are handled by the comparator.

Canonical form, "diff -b" mode (whitespace = space, TAB, VT, FF, CR as
C ``isspace`` without the newline): every run of whitespace becomes one space,
whitespace before ``\\n`` and at end of file goes, leading whitespace of a line
stays (one space), and a final newline is added when the file does not end
with one.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

logger = logging.getLogger(__name__)

#: How much is read from each file at a time (bytes).
CHUNK_SIZE = 1 << 20

#: How many leading bytes of a word are kept for the message (a shown token
#: is at most 100 bytes, and every byte shows as at least one byte).
_KEEP = 128

_OICOMPARE_SEPARATORS = b"\t\v\r\0"
_DIFF_B_WHITESPACE = b"\t\v\f\r"


# --------------------------------------------------------------------------
# The C canonicalizer
# --------------------------------------------------------------------------

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_compare.c")

# Bits of the state sio_canonical() keeps between chunks (see _compare.c).
_PENDING, _LINE_START, _STRIP = 1, 2, 4
# What sio_canonical() returns for a chunk that is its own canonical form.
_UNCHANGED = (1 << (8 * ctypes.sizeof(ctypes.c_size_t))) - 1


@dataclass(frozen=True)
class NativeHelper:
    """The functions of ``_compare.c``."""

    #: ``sio_canonical(in, n, out, classes, translation, &state, &newlines)``
    canonical: Callable[..., int]
    #: ``sio_count_newlines(in, n)``
    count_newlines: Callable[[bytes, int], int]


_native_lock = threading.Lock()
_native: list[NativeHelper | None] = []  # [the helper or None] once looked for


def native_helper() -> NativeHelper | None:
    """The C helper, built and loaded on first use; ``None`` when it cannot
    be (no C compiler, a cache directory where nothing may be executed,
    ...: logged once), and then the comparators do the same in Python."""
    if not _native:
        with _native_lock:
            if not _native:
                _native.append(_load_native())
    return _native[0]


def _load_native() -> NativeHelper | None:
    # The engine's builder: one cache, one compiler setting (CC), the same
    # care about concurrent builds and stale binaries.
    from sio.workers._engine import build

    fallback = "outputs will be compared in pure Python (slower)"
    path = build.find_or_build("compare", _SOURCE,
                               (["-O3", "-shared", "-fPIC"], ["-O2", "-shared", "-fPIC"]),
                               fallback)
    if path is None:
        return None
    try:
        library = ctypes.CDLL(path)
        canonical, count = library.sio_canonical, library.sio_count_newlines
    except (OSError, AttributeError) as e:
        logger.warning("Cannot load %s (%s): %s.", path, e, fallback)
        return None
    canonical.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p,
                          ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                          ctypes.POINTER(ctypes.c_size_t)]
    canonical.restype = ctypes.c_size_t
    count.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    count.restype = ctypes.c_size_t
    return NativeHelper(canonical, count)


def _class_table(separators: bytes) -> bytes:
    """The byte classes of ``_compare.c``: 0 word, 1 space, 2 newline."""
    table = bytearray(256)
    for c in b" " + separators:
        table[c] = 1
    table[0x0A] = 2
    return bytes(table)


class _Canonical:
    """The canonical form of one file, produced chunk by chunk by :meth:`next`.

    With ``count_lines``, :attr:`newlines` counts the newlines of the
    canonical form produced so far (the same as of the raw bytes read: a
    newline is never dropped).
    """

    def __init__(self, f: BinaryIO, separators: bytes, *, strip_line_start: bool,
                 final_newline: bool, count_lines: bool = False) -> None:
        self._f = f
        self._count_lines = count_lines
        self._table = bytes.maketrans(separators, b" " * len(separators))
        self._strip_line_start = strip_line_start
        self._final_newline = final_newline
        self._pending = False      # a space was held back at the end of the last chunk
        self._line_start = True    # the last byte emitted was '\n' (or nothing was)
        self._last_raw = b"\n"     # last raw byte read ('\n' stands for "empty file")
        self._done = False
        self._pushed = b""
        self._spaces = b" " + separators
        self._native = native_helper()
        self._classes = _class_table(separators)
        self._out = bytearray()
        self._out_c: ctypes.Array[ctypes.c_char] | None = None
        self._state = ctypes.c_int()
        self._newlines = ctypes.c_size_t()
        self.newlines = 0

    def next(self) -> bytes | None:
        """The next non-empty canonical chunk, or None at the end of the file."""
        while not self._done:
            raw = self._pushed or self._f.read(CHUNK_SIZE)
            self._pushed = b""
            if not raw:
                self._done = True
                # A held-back space is trailing whitespace: it never shows.
                if self._final_newline and self._last_raw != b"\n":
                    return b"\n"
                return None
            c = self._canonical(raw)
            if c:
                return c
        return None

    def read_raw(self) -> bytes:
        """Read a raw chunk to look at before deciding what to do with it:
        either :meth:`absorb` it or :meth:`push_back` it."""
        return self._f.read(CHUNK_SIZE)

    def push_back(self, raw: bytes) -> None:
        """Have :meth:`next` start with ``raw``."""
        self._pushed = raw

    def absorb(self, raw: bytes) -> None:
        """Update the state as if :meth:`next` had turned ``raw`` into canonical
        form and it had been consumed, without doing the work (the caller
        knows the other file has the very same bytes here)."""
        if not raw:
            return
        if self._count_lines:
            self.newlines += (raw.count(b"\n") if self._native is None
                              else self._native.count_newlines(raw, len(raw)))
        self._last_raw = raw[-1:]
        ends_in_space = raw[-1] in self._spaces
        # Only the end of the chunk matters; look at all of it only when its
        # tail is nothing but spaces (rare).
        tail = raw[-64:].rstrip(self._spaces)
        if not tail and len(raw) > 64:
            tail = raw.rstrip(self._spaces)
        if tail:
            self._line_start = tail[-1:] == b"\n"
            self._pending = ends_in_space and not (self._line_start and self._strip_line_start)
        elif not (self._line_start and self._strip_line_start):
            self._pending = True

    def _canonical(self, raw: bytes) -> bytes:
        self._last_raw = raw[-1:]
        if self._native is not None:
            return self._canonical_native(raw)
        c = self._canonical_python(raw)
        if self._count_lines:
            self.newlines += c.count(b"\n")
        return c

    def _canonical_python(self, raw: bytes) -> bytes:        # (No "in" tests before the replaces: replace returns the very same
        # object when there is nothing to replace, so a test costs a pass.)
        # The same as _compare.c does, in a few passes.
        c = raw.translate(self._table)
        while True:
            # Each pass halves every run of spaces: log2(longest run) passes.
            shorter = c.replace(b"  ", b" ")
            if len(shorter) == len(c):
                break
            c = shorter
        # Runs are single spaces now, so one replace removes them all.
        c = c.replace(b" \n", b"\n")
        if self._strip_line_start:
            c = c.replace(b"\n ", b"\n")
        # Chunk boundaries: a run of spaces or a space next to a newline
        # may straddle two chunks.
        if c[:1] == b" " and (self._pending or (self._line_start and self._strip_line_start)):
            c = c[1:]
        if self._pending and c and c[:1] != b"\n":
            c = b" " + c
            self._pending = False
        elif c[:1] == b"\n":
            self._pending = False
        if c[-1:] == b" ":
            c = c[:-1]
            self._pending = True
        if c:
            self._line_start = c[-1:] == b"\n"
        return c


    def _canonical_native(self, raw: bytes) -> bytes:
        assert self._native is not None
        if self._out_c is None or len(self._out) <= len(raw):
            # Room for the chunk and a held-back space; reused for every
            # chunk (a new ctypes view only when a longer chunk comes).
            self._out_c = None
            self._out = bytearray(len(raw) + 1)
            self._out_c = (ctypes.c_char * len(self._out)).from_buffer(self._out)
        self._state.value = ((_PENDING if self._pending else 0)
                             | (_LINE_START if self._line_start else 0)
                             | (_STRIP if self._strip_line_start else 0))
        self._newlines.value = 0
        n = self._native.canonical(raw, len(raw), self._out_c, self._classes, self._table,
                         ctypes.byref(self._state), ctypes.byref(self._newlines))
        self.newlines += self._newlines.value
        state = self._state.value
        self._pending = bool(state & _PENDING)
        self._line_start = bool(state & _LINE_START)
        if n == _UNCHANGED:
            return raw
        with memoryview(self._out) as view:
            return view[:n].tobytes()


class _Cursor:
    """Reads tokens of a canonical stream from a position on (used once a
    difference has been found, so speed matters little here)."""

    def __init__(self, buf: bytes, src: _Canonical) -> None:
        self._buf = buf
        self._pos = 0
        self._src = src

    def peek(self) -> int | None:
        while self._pos >= len(self._buf):
            nxt = self._src.next()
            if nxt is None:
                return None
            self._buf, self._pos = nxt, 0
        return self._buf[self._pos]

    def skip(self) -> None:
        self.peek()
        self._pos += 1

    def take_word(self) -> tuple[bytes, int]:
        """Consume the word (or rest of a word) here: its first bytes, its length."""
        head = b""
        length = 0
        while self.peek() is not None:
            buf, pos = self._buf, self._pos
            ends = [i for i in (buf.find(b" ", pos), buf.find(b"\n", pos)) if i >= 0]
            end = min(ends) if ends else len(buf)
            if len(head) < _KEEP:
                head += buf[pos:min(end, pos + _KEEP - len(head))]
            length += end - pos
            self._pos = end
            if ends:
                break
        return head, length

    def skip_newlines(self) -> int:
        n = 0
        while self.peek() == 0x0A:
            buf, pos = self._buf, self._pos
            end = pos
            while end < len(buf) and buf[end] == 0x0A:
                end += 1
            n += end - pos
            self._pos = end
        return n


def _mismatch(a: bytes, b: bytes, n: int) -> int:
    """Index of the first differing byte of ``a[:n]`` and ``b[:n]`` (they differ)."""
    lo, step = 0, 4096
    while lo < n:
        hi = min(lo + step, n)
        if a[lo:hi] != b[lo:hi]:
            break
        lo = hi
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


def _common_prefix(ca: _Canonical, cb: _Canonical,
                   consumed: Callable[[bytes, int], None] | None
                   ) -> tuple[bytes, bytes]:
    """Walk both canonical streams while they are equal.

    Returns the unconsumed rest of the current chunks ``(a, b)``: both empty
    when the streams are equal, otherwise they start at the first difference
    (one of them may be empty: that stream has ended, though the other
    reader may still have more). ``consumed(chunk, n)`` is told about every
    equal stretch ``chunk[:n]``.
    """
    # While the raw files are byte-identical their canonical forms are too:
    # skip the canonical work and just keep the states up to date. This is
    # the common case (a correct output is usually the hint byte for byte)
    # and it runs at memcmp speed.
    while True:
        ra, rb = ca.read_raw(), cb.read_raw()
        if ra != rb or not ra:
            ca.push_back(ra)
            cb.push_back(rb)
            break
        ca.absorb(ra)
        cb.absorb(rb)
        if consumed is not None:
            consumed(ra, -1)
    a = b = b""
    while True:
        if not a:
            a = ca.next() or b""
        if not b:
            b = cb.next() or b""
        if not a or not b:
            return a, b
        la, lb = len(a), len(b)
        # startswith is a memcmp without slicing a copy of the longer chunk.
        same = a.startswith(b) if la >= lb else b.startswith(a)
        n = min(la, lb)
        if not same:
            n = _mismatch(a, b, n)
        if consumed is not None and n:
            consumed(a, n)
        a = a[n:] if n < la else b""
        b = b[n:] if n < lb else b""
        if not same:
            return a, b


# --------------------------------------------------------------------------
# oicompare rules
# --------------------------------------------------------------------------

#: Kinds of token in a :class:`Token`.
WORD, EOL, EOF = "word", "eol", "eof"


@dataclass(frozen=True, slots=True)
class Token:
    """One side of a difference: ``kind`` is ``WORD``, ``EOL`` or ``EOF``;
    for a word, ``head`` is its first bytes and ``length`` its full length."""

    kind: str
    head: bytes = b""
    length: int = 0


@dataclass(frozen=True, slots=True)
class Difference:
    """The first difference: 1-based ``line``, the ``expected`` token (hint)
    and the one we ``got`` (program output)."""

    line: int
    expected: Token
    got: Token


class _Position:
    """The start of the word in progress, kept up to date over the equal
    prefix. (The line number comes from the hint's newline count.)"""

    __slots__ = ("word", "word_len")

    def __init__(self) -> None:
        self.word = b""
        self.word_len = 0

    def consumed(self, chunk: bytes, n: int) -> None:
        """``chunk[:n]`` is equal in both; ``n == -1``: the whole ``chunk`` is
        equal, and raw (not in canonical form)."""
        if n < 0:
            self._consumed_raw(chunk)
            return
        k = max(chunk.rfind(b" ", 0, n), chunk.rfind(b"\n", 0, n))
        if k >= 0:
            self.word = chunk[k + 1:min(n, k + 1 + _KEEP)]
            self.word_len = n - k - 1
        else:
            if len(self.word) < _KEEP:
                self.word += chunk[:min(n, _KEEP - len(self.word))]
            self.word_len += n


    _RAW_TO_SPACE = bytes.maketrans(_OICOMPARE_SEPARATORS + b"\n",
                                    b" " * (len(_OICOMPARE_SEPARATORS) + 1))

    def _consumed_raw(self, raw: bytes) -> None:
        # Where the last word starts: look at the tail first, the whole
        # chunk only for a word longer than the tail.
        tail = raw[-_KEEP - 1:].translate(self._RAW_TO_SPACE)
        k = tail.rfind(b" ")
        if k >= 0:
            self.word = raw[len(raw) - len(tail) + k + 1:]
            self.word_len = len(self.word)
            return
        k = raw.translate(self._RAW_TO_SPACE).rfind(b" ")
        if k >= 0:
            self.word = raw[k + 1:k + 1 + _KEEP]
            self.word_len = len(raw) - k - 1
        else:
            if len(self.word) < _KEEP:
                self.word += raw[:_KEEP - len(self.word)]
            self.word_len += len(raw)


def _token(cur: _Cursor) -> Token:
    c = cur.peek()
    if c is None:
        return Token(EOF)
    if c == 0x0A:
        return Token(EOL)
    head, length = cur.take_word()
    return Token(WORD, head, length)


def first_difference(hint: BinaryIO, out: BinaryIO) -> Difference | None:
    """Compare two open binary files under oicompare's rules; None if equal.

    Tokens are words separated by space, TAB, VT, CR or NUL, and the
    end-of-line ``\\n``; words are compared byte for byte; any number of
    trailing end-of-lines (with whitespace among them) is ignored.
    """
    ca = _Canonical(hint, _OICOMPARE_SEPARATORS, strip_line_start=True, final_newline=False,
                    count_lines=True)
    cb = _Canonical(out, _OICOMPARE_SEPARATORS, strip_line_start=True, final_newline=False)
    pos = _Position()
    a, b = _common_prefix(ca, cb, pos.consumed)
    # Newlines of the hint's canonical form so far, less those of the rest
    # that is not yet compared.
    line = 1 + ca.newlines - a.count(b"\n")
    xa, xb = _Cursor(a, ca), _Cursor(b, cb)
    if xa.peek() is None and xb.peek() is None:
        return None
    if pos.word_len:
        # Inside a word that matched so far: the rest of each word.
        ha, la = xa.take_word()
        hb, lb = xb.take_word()
        if la or lb:
            return Difference(line, _join(pos, ha, la), _join(pos, hb, lb))
    # Both words ended here, on different separators: a space (then a word),
    # a newline or the end. Step over the space to the next token. (A space
    # also starts the canonical rest when the identical raw prefix ended in
    # one: it was held back until the next word came.)
    for x in (xa, xb):
        if x.peek() == 0x20:
            x.skip()
    ta, tb = _token(xa), _token(xb)
    if ta.kind == EOF or tb.kind == EOF:
        if ta.kind == EOL or tb.kind == EOL:
            # End of file against newlines: equal if only newlines follow;
            # otherwise report what follows them, on its own line.
            x = xa if ta.kind == EOL else xb
            line += x.skip_newlines()
            t = _token(x)
            if t.kind == EOF:
                return None
            return Difference(line, t, tb) if x is xa else Difference(line, ta, t)
        return Difference(line, ta, tb)
    # A newline against a word: when only newlines remain on that side it is
    # really the end of the file that is there.
    if ta.kind == EOL and xa.skip_newlines() and xa.peek() is None:
        ta = Token(EOF)
    if tb.kind == EOL and xb.skip_newlines() and xb.peek() is None:
        tb = Token(EOF)
    return Difference(line, ta, tb)


def _join(pos: _Position, head: bytes, length: int) -> Token:
    return Token(WORD, (pos.word + head)[:_KEEP] if len(pos.word) < _KEEP else pos.word,
                 pos.word_len + length)


# --------------------------------------------------------------------------
# diff -b rules
# --------------------------------------------------------------------------

def diff_b_equal(a: BinaryIO, b: BinaryIO) -> bool:
    """True when GNU ``diff -a -b -q`` would find the open files equal."""
    ca = _Canonical(a, _DIFF_B_WHITESPACE, strip_line_start=False, final_newline=True)
    cb = _Canonical(b, _DIFF_B_WHITESPACE, strip_line_start=False, final_newline=True)
    ra, rb = _common_prefix(ca, cb, None)
    return not ra and not rb and ca.next() is None and cb.next() is None
