"""Output checking: :func:`run`, the default comparators and the checker
output protocol.

:func:`run` checks the output of a run in the ``exec`` family of jobs, with
a custom checker (``chk_file``) or a default comparator. Its building
blocks:

* :func:`compare_outputs`: the native default comparator, with oicompare's
  rules and messages in the ``checker_format`` languages (see
  :doc:`/checking`); it replaces the ``oicompare`` sandbox of the original;
* :func:`diff_b_equal`: the ``diff -b``-equivalent used by ``unsafe-exec``
  when there is no custom checker;
* :func:`interpret_checker_output` and :func:`output_to_fraction`: what the up
  to three lines a checker prints mean (``result_code``, ``result_string``,
  ``result_percentage``); :func:`comparison_renv` does the same for the
  default comparators.

Environ keys these helpers are about (the job reads and writes them; see
:func:`run` for all of them):

* reads ``checker_format`` (str, ``<language>_<format>``, default
  ``english_abbreviated``), see :func:`parse_checker_format`;
* writes ``result_code`` (``'OK'``/``'WA'``), ``result_string`` (str, at most
  :data:`RESULT_STRING_LENGTH_LIMIT` bytes in UTF-8) and
  ``result_percentage`` (``[numerator, denominator]``, ints, reduced).
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Literal, TypedDict

from sio.executors import _compare
from sio.executors._compare import EOF, EOL, Difference, Token
from sio.workers.errors import MissingEnvironKey, SioWorkersError, UsageError
from sio.workers.util import tempcwd

__all__ = [
    "CheckerError",
    "UnknownCheckerFormat",
    "CompareResult",
    "CheckerRenv",
    "CHECKER_FORMATS",
    "DEFAULT_CHECKER_FORMAT",
    "DEFAULT_CHECKER_TIME_LIMIT",
    "DEFAULT_CHECKER_MEM_LIMIT",
    "RESULT_STRING_LENGTH_LIMIT",
    "TOKEN_DISPLAY_LIMIT",
    "parse_checker_format",
    "compare_outputs",
    "diff_b_equal",
    "comparison_renv",
    "interpret_checker_output",
    "output_to_fraction",
    "limit_result_string",
    "run",
    "run_custom_checker",
    "DEFAULT_CHECKER_OUTPUT_LIMIT",
]

#: Default time limit of a custom checker (ms).
DEFAULT_CHECKER_TIME_LIMIT = 30000
#: Default memory limit of a custom checker (KiB).
DEFAULT_CHECKER_MEM_LIMIT = 262144
#: At most this much of a custom checker's standard output is read (bytes);
#: the rest is read and dropped. Only three lines of it mean anything.
DEFAULT_CHECKER_OUTPUT_LIMIT = 10 << 20
#: ``result_string`` never exceeds this many bytes (UTF-8).
RESULT_STRING_LENGTH_LIMIT = 1024
#: What replaces the end of a ``result_string`` that was too long.
_ELLIPSIS = "[...]"

#: The ``checker_format`` used when the environ has none.
DEFAULT_CHECKER_FORMAT = "english_abbreviated"
Language = Literal["english", "polish"]
Format = Literal["abbreviated", "terse"]
#: Every valid ``checker_format``.
CHECKER_FORMATS = ("english_abbreviated", "english_terse",
                   "polish_abbreviated", "polish_terse")

#: A shown token is at most this many bytes (UTF-8), ``…`` included.
TOKEN_DISPLAY_LIMIT = 100


class CheckerError(SioWorkersError, SystemError):
    """The checker is broken: it exited with status 2 or more, or printed a
    percentage that is not a number.

    Also a :class:`SystemError` because that is the contract: a broken
    checker makes the whole job fail with ``SystemError`` (oioioi turns that
    into a system error of the submission, not a verdict), and callers of the
    original catch exactly that.
    """


class UnknownCheckerFormat(UsageError):
    """``checker_format`` is not one of :data:`CHECKER_FORMATS`."""


@dataclass(frozen=True, slots=True)
class CompareResult:
    """Result of a default comparison: ``ok``, and ``message``, the line the
    comparator prints (``'OK'`` when equal, else the difference message in
    the requested ``checker_format``)."""

    ok: bool
    message: str


class CheckerRenv(TypedDict, total=False):
    """The renv fields a check produces (``result_string`` is absent when it
    must be left as the executor set it)."""

    result_code: str
    result_string: str
    result_percentage: list[int]


# --------------------------------------------------------------------------
# checker_format and messages
# --------------------------------------------------------------------------

def parse_checker_format(checker_format: str | None) -> tuple[Language, Format]:
    """Split ``checker_format`` into (language, format); None means
    :data:`DEFAULT_CHECKER_FORMAT`.

    :raises UnknownCheckerFormat: (a :class:`ValueError`) naming the valid ones.
    """
    if checker_format is None:
        checker_format = DEFAULT_CHECKER_FORMAT
    if checker_format not in CHECKER_FORMATS:
        raise UnknownCheckerFormat(
            f"unknown checker_format {checker_format!r}; valid ones: "
            + ", ".join(CHECKER_FORMATS))
    language, fmt = checker_format.split("_")
    return language, fmt  # type: ignore[return-value]


# Wording of each language: verdict word, "line", "expected", "got", and the
# special tokens. Polish: "BŁĄD: wiersz 3: oczekiwano "5", otrzymano "6"".
_WORDS: dict[str, dict[str, str]] = {
    "english": {"wrong": "WRONG", "line": "line", "expected": "expected", "got": "got",
                EOL: "end of line", EOF: "end of file"},
    "polish": {"wrong": "BŁĄD", "line": "wiersz", "expected": "oczekiwano",
               "got": "otrzymano", EOL: "koniec wiersza", EOF: "koniec pliku"},
}


def _message(diff: Difference, language: str, fmt: str) -> str:
    w = _WORDS[language]
    if fmt == "terse":
        # Terse says only that the answer is wrong: nothing of the expected
        # output leaks to the contestant.
        return w["wrong"]
    return (f"{w['wrong']}: {w['line']} {diff.line}: "
            f"{w['expected']} {_show(diff.expected, w)}, {w['got']} {_show(diff.got, w)}")


def _show(token: Token, words: dict[str, str]) -> str:
    if token.kind != _compare.WORD:
        return words[token.kind]
    return '"' + _render(token.head, token.length) + '"'


def _render(head: bytes, length: int) -> str:
    """Show a word: printable characters as they are, anything else (control
    bytes, invalid UTF-8, non-printable characters) as ``<0xNN>`` per byte;
    abbreviated with ``…`` to at most :data:`TOKEN_DISPLAY_LIMIT` bytes."""
    units: list[str] = []
    for ch in head.decode("utf-8", "surrogateescape"):
        if "\udc80" <= ch <= "\udcff":       # an undecodable byte
            units.append(f"<0x{ord(ch) - 0xDC00:02X}>")
        elif ch.isprintable():
            units.append(ch)
        else:
            units += [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
    sizes = [len(u.encode("utf-8")) for u in units]
    if length <= len(head) and sum(sizes) <= TOKEN_DISPLAY_LIMIT:
        return "".join(units)
    # Cut between units (never inside a character or a <0xNN>).
    budget = TOKEN_DISPLAY_LIMIT - len("…".encode("utf-8"))
    out, used = [], 0
    for u, n in zip(units, sizes):
        if used + n > budget:
            break
        out.append(u)
        used += n
    return "".join(out) + "…"


# --------------------------------------------------------------------------
# Default comparators
# --------------------------------------------------------------------------

def _open(source: str | os.PathLike[str] | BinaryIO, stack: ExitStack) -> BinaryIO:
    if isinstance(source, (str, os.PathLike)):
        return stack.enter_context(open(source, "rb", buffering=0))
    return source


def compare_outputs(hint: str | os.PathLike[str] | BinaryIO,
                    out: str | os.PathLike[str] | BinaryIO,
                    checker_format: str | None = DEFAULT_CHECKER_FORMAT) -> CompareResult:
    """Compare the program output ``out`` with the expected ``hint`` under
    oicompare's rules (see :doc:`/checking`).

    Both are paths or binary files open for reading; they are streamed in
    chunks of about a megabyte, never read whole. Any bytes are fine.

    :param checker_format: ``<language>_<format>``, one of
        :data:`CHECKER_FORMATS` (None: the default).
    :raises UnknownCheckerFormat: on a bad ``checker_format`` (checked before
        any file is opened).
    """
    language, fmt = parse_checker_format(checker_format)
    with ExitStack() as stack:
        diff = _compare.first_difference(_open(hint, stack), _open(out, stack))
    if diff is None:
        return CompareResult(True, "OK")
    return CompareResult(False, _message(diff, language, fmt))


def diff_b_equal(a: str | os.PathLike[str] | BinaryIO,
                 b: str | os.PathLike[str] | BinaryIO) -> bool:
    """True when the files are equal for GNU ``diff -b`` (as text, ``-a``):
    lines compared with any non-empty run of whitespace equal to any other,
    whitespace at the end of a line and a missing final newline ignored.
    Symmetric; streamed like :func:`compare_outputs`."""
    with ExitStack() as stack:
        return _compare.diff_b_equal(_open(a, stack), _open(b, stack))


def comparison_renv(ok: bool, message: str = "") -> CheckerRenv:
    """The renv fields of a default comparison, as the original set them from
    oicompare's exit status: equal → ``OK``, ``[100, 1]``, ``result_string``
    left alone; different → ``WA``, ``[0, 1]``, ``result_string`` = the
    message, limited.

    Pass ``result.ok, result.message`` of :func:`compare_outputs`, or the
    bool of :func:`diff_b_equal` alone (its WA has an empty message).
    """
    if ok:
        return {"result_code": "OK", "result_percentage": [100, 1]}
    return {"result_code": "WA", "result_percentage": [0, 1],
            "result_string": limit_result_string(message)}


# --------------------------------------------------------------------------
# The checker output protocol
# --------------------------------------------------------------------------

def limit_result_string(s: str | bytes) -> str:
    """``s`` as a str of at most :data:`RESULT_STRING_LENGTH_LIMIT` bytes in
    UTF-8: bytes are decoded as UTF-8 with invalid sequences replaced by
    U+FFFD; a longer string keeps its first 1019 bytes, less a character
    that would be cut in half, followed by ``[...]``."""
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    encoded = s.encode("utf-8")
    if len(encoded) <= RESULT_STRING_LENGTH_LIMIT:
        return s
    head = encoded[:RESULT_STRING_LENGTH_LIMIT - len(_ELLIPSIS)]
    # The bytes are valid UTF-8 up to a possibly cut last character, which
    # 'ignore' drops.
    return head.decode("utf-8", "ignore") + _ELLIPSIS


def interpret_checker_output(stdout: bytes | str) -> CheckerRenv:
    """What a checker's standard output means.

    Lines are split on ``\\n`` (nothing is stripped); missing lines are
    empty, lines after the third are ignored:

    1. exactly ``OK`` → ``result_code='OK'``; anything else (``OK `` and
       ``OK\\r`` included, and empty output) → ``'WA'``;
    2. a comment: with WA it is always the ``result_string`` (maybe empty);
       with OK only when non-empty (else the key is absent, leaving the
       executor's string); limited by :func:`limit_result_string`;
    3. with OK, the score in percent (:func:`output_to_fraction`); with WA
       it is ignored and the score is ``[0, 1]``.

    :raises CheckerError: when line 3 is not a valid percentage (OK only).
    """
    raw = stdout.encode("utf-8", "surrogateescape") if isinstance(stdout, str) else stdout
    lines = raw.split(b"\n", 3)[:3]
    lines += [b""] * (3 - len(lines))
    if lines[0] != b"OK":
        return {"result_code": "WA", "result_string": limit_result_string(lines[1]),
                "result_percentage": [0, 1]}
    renv: CheckerRenv = {"result_code": "OK"}
    if lines[1]:
        renv["result_string"] = limit_result_string(lines[1])
    renv["result_percentage"] = list(output_to_fraction(lines[2]))
    return renv


# A percentage: a fraction of integers, or a decimal (exponent allowed)
# optionally followed by '%'. ASCII digits only, a sign allowed, whitespace
# around the whole (so a CR of a CRLF line) allowed, none inside.
_FRACTION = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)/([0-9]+)[ \t\n\v\f\r]*")
_DECIMAL = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?%?[ \t\n\v\f\r]*")
#: Exponents beyond this are refused (10**huge would take forever).
_MAX_EXPONENT = 1000
#: Longer numbers are refused (Python limits int() of strings anyway).
_MAX_DIGITS = 4000


def output_to_fraction(s: bytes | str) -> tuple[int, int]:
    """The score in percent that a checker printed on its third line, as a
    reduced ``(numerator, denominator)`` tuple (denominator > 0), as the
    original returned it (the environ's ``result_percentage`` is the same
    pair as a list, which is what JSON gives anyway).

    * empty → ``(100, 1)`` (a checker that says only ``OK`` gives full marks);
    * an integer or decimal: ``50``, ``12.5``, ``42.``, ``.5``, ``1e5``,
      ``-3`` → that many percent (``12.5`` → ``(25, 2)``);
    * a percent: the same followed by ``%``: ``50%`` → ``(50, 1)`` (the
      sign only names the unit the line already has);
    * a fraction of integers: ``1/3`` → ``(1, 3)`` percent, ``007/0042`` →
      ``(1, 6)``.

    Values above 100 and negative ones pass through (the contest system
    decides). Whitespace around the value is allowed, inside it not.

    :raises CheckerError: "Invalid checker output, expected float, percent or
        fraction, got '…'" or "Zero division in checker output: '…'".
    """
    raw = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    if not raw:
        return (100, 1)
    shown = raw.decode("utf-8", "replace")
    invalid = CheckerError("Invalid checker output, expected float, percent or "
                           f"fraction, got {shown!r}")
    if len(raw) > _MAX_DIGITS:
        raise invalid
    m = _FRACTION.fullmatch(raw)
    if m:
        num, den = int(m[1]), int(m[2])
        if den == 0:
            raise CheckerError(f"Zero division in checker output: {shown!r}")
        value = Fraction(num, den)
    else:
        m = _DECIMAL.fullmatch(raw)
        if not m:
            raise invalid
        sign, digits, exp = m[1], m[2], m[3]
        whole, _, frac = digits.partition(b".")
        value = Fraction(int(whole or b"0") * 10 ** len(frac) + int(frac or b"0"),
                         10 ** len(frac))
        if exp is not None:
            e = int(exp)
            if abs(e) > _MAX_EXPONENT:
                raise invalid
            value *= Fraction(10) ** e
        if sign == b"-":
            value = -value
    return (value.numerator, value.denominator)


# --------------------------------------------------------------------------
# Checking a run
# --------------------------------------------------------------------------

#: What a CheckerError quotes of the checker's stdout and stderr (bytes each).
_QUOTED_OUTPUT = 2048


def run(environ: dict[str, Any], use_sandboxes: bool = True) -> dict[str, Any]:
    """Check the program output ``out`` of the job directory (fetched from
    ``out_file`` when not there) and write the verdict into ``environ``.

    Environ keys read:

    ``hint_file`` (required)
        the expected output.
    ``chk_file`` (optional)
        a custom checker, run as ``./chk in out hint`` in the job
        directory (``in`` is fetched from ``in_file`` when not there); its
        output is read with :func:`interpret_checker_output` and an exit
        status of 2 or more (or a kill) is a :class:`CheckerError`.
    ``untrusted_checker`` (bool, default False)
        with ``use_sandboxes``, run the custom checker under the supervisor
        (see :mod:`sio.executors.selection`); otherwise it runs unprotected.
    ``checker_time_limit`` (ms, default 30000), ``checker_real_time_limit`` (ms, default twice the time limit; an untrusted checker: twice + 1000, and 1000 ms are added to a given one), ``checker_mem_limit`` (KiB, default 262144), ``checker_output_limit`` (bytes of its stdout read, default 10 MiB)
        limits of the custom checker.
    ``checker_format`` (default ``english_abbreviated``)
        messages of the default comparator.

    Without a custom checker the output is compared natively: with
    :func:`compare_outputs` (oicompare's rules) when ``use_sandboxes``,
    with :func:`diff_b_equal` otherwise (``unsafe-exec``, as the original's
    ``diff -b``).

    Keys written: ``result_code`` (``OK``/``WA``), ``result_string``
    (at most 1024 bytes; left alone on OK without a comment),
    ``result_percentage`` (``[numerator, denominator]`` percent).

    :raises CheckerError: (a :class:`SystemError`) the checker is broken.
    :raises MissingEnvironKey: no ``hint_file``.
    """
    from sio.executors import common

    needed_by = "output checking (check_output)"
    out = tempcwd(common.OUTPUT)
    if not os.path.exists(out):
        out = common.download(environ, "out_file", common.OUTPUT, needed_by)
    hint = common.download(environ, "hint_file", "hint", needed_by, add_to_cache=True)
    renv: CheckerRenv
    if environ.get("chk_file"):
        if not os.path.exists(tempcwd(common.INPUT)):
            common.fetch_input(environ, needed_by)
        common.download_program(environ, "chk_file", "chk", needed_by, add_to_cache=True)
        renv = interpret_checker_output(run_custom_checker(environ, use_sandboxes))
    elif use_sandboxes:
        result = compare_outputs(hint, out, environ.get("checker_format"))
        renv = comparison_renv(result.ok, result.message)
    else:
        renv = comparison_renv(diff_b_equal(out, hint))
    environ.update(renv)
    return environ


def run_custom_checker(environ: dict[str, Any], use_sandboxes: bool = True) -> bytes:
    """Run ``./chk in out hint`` in the job directory (the three files must
    be there) and return its standard output (at most
    ``checker_output_limit`` bytes).

    :raises CheckerError: it exited with status 2 or more, was killed (a
        limit), or the executor found it broken; the message quotes its
        stdout and stderr.
    """
    from sio.executors.selection import executor_for
    from sio.workers.file_runners import helper_runner

    untrusted = bool(environ.get("untrusted_checker")) and use_sandboxes
    role = "untrusted-checker" if untrusted else "checker"
    stderr_path = tempcwd("chk.stderr")
    try:
        # oioioi sends the checker without its exec_info: a Python checker
        # (a zip application or a #! script) is told by its first bytes.
        runner = helper_runner(executor_for(role), "chk")
        with runner, open(stderr_path, "w+b") as stderr:
            renv = runner("chk", ["in", "out", "hint"], capture_output=True,
                          stderr=stderr, ignore_errors=True,
                          time_limit=DEFAULT_CHECKER_TIME_LIMIT,
                          mem_limit=DEFAULT_CHECKER_MEM_LIMIT,
                          output_limit=DEFAULT_CHECKER_OUTPUT_LIMIT,
                          environ=environ, environ_prefix="checker_")
            stderr.seek(0)
            err = stderr.read(_QUOTED_OUTPUT + 1)
    finally:
        if os.path.exists(stderr_path):
            os.unlink(stderr_path)
    out = renv.get("stdout") or b""
    code = renv.get("return_code")
    verdict = renv.get("result_code")  # only from executors that give one
    if code in (0, 1) and verdict in (None, "OK", "RE") and not renv.get("real_time_killed"):
        limit = environ.get("checker_output_limit") or DEFAULT_CHECKER_OUTPUT_LIMIT
        if len(out) >= int(limit) and out.startswith(b"OK\n") and out.count(b"\n") < 3:
            # An OK cut before the end of its third line: the score is unknown.
            raise CheckerError(
                f"Checker {environ.get('chk_file')!r} printed more than {limit} bytes before "
                f"the end of its third line; stdout begins: {_quote(out)}")
        return out
    why = f"exited with code {code}"
    if renv.get("real_time_killed"):
        why = "exceeded its real time limit"
    elif code is not None and code > 128:
        why = f"was killed by signal {code - 128} (a time or memory limit?)"
    if verdict not in (None, "OK", "RE"):
        why += f" ({verdict}: {renv.get('result_string', '')})"
    raise CheckerError(
        f"Checker {environ.get('chk_file')!r} {why} on in_file {environ.get('in_file')!r}; "
        f"stdout: {_quote(out)}; stderr: {_quote(err)}")


def _quote(data: bytes) -> str:
    text = data[:_QUOTED_OUTPUT].decode("utf-8", "replace")
    return repr(text) + (" [...]" if len(data) > _QUOTED_OUTPUT else "")
