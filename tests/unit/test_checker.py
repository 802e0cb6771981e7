"""The pure-Python output checking core: default comparator (oicompare rules),
diff -b equivalent, checker output protocol (sio.executors.checker)."""

from __future__ import annotations

import io
import random
import re

import pytest

from sio.executors import _compare
from sio.executors.checker import (
    CHECKER_FORMATS,
    CheckerError,
    CompareResult,
    UnknownCheckerFormat,
    compare_outputs,
    comparison_renv,
    diff_b_equal,
    interpret_checker_output,
    limit_result_string,
    output_to_fraction,
    parse_checker_format,
)
from sio.workers.errors import SioWorkersError, UsageError


def cmp(hint: bytes, out: bytes, fmt: str = "english_abbreviated") -> CompareResult:
    return compare_outputs(io.BytesIO(hint), io.BytesIO(out), fmt)


def msg(hint: bytes, out: bytes, fmt: str = "english_abbreviated") -> str:
    return cmp(hint, out, fmt).message


@pytest.fixture(params=[1, 2, 3, 7, 1 << 20], ids=lambda n: f"chunk{n}")
def chunk_size(request, monkeypatch, comparator_impl):
    """Run the test with tiny chunks too, so that every rule is exercised
    across chunk boundaries, with the C canonical form and without."""
    monkeypatch.setattr(_compare, "CHUNK_SIZE", request.param)
    return request.param


# --------------------------------------------------------------------------
# oicompare rules
# --------------------------------------------------------------------------

EQUAL = [
    (b"", b""),
    (b"42\n", b"42\n"),
    (b"42\n", b"42"),                       # missing final newline
    (b"42", b"42\n\n\n\n"),                 # any number of trailing newlines
    (b"1 2 3\n", b"1  2\t3\n"),             # any run of separators
    (b"1 2\n", b"  1 2   \n"),              # leading and trailing separators
    (b"1 2\r\n3\r\n", b"1 2\n3\n"),         # CRLF
    (b"a\x00b", b"a b"),                    # NUL separates
    (b"a\vb", b"a\tb"),                     # VT separates
    (b"1\n2\n", b"1 \n 2 \n \n\t\n"),       # whitespace among trailing newlines
    (b"", b"\n \n\r\n"),
    (b"\xff\xfe\n", b"\xff\xfe"),           # any bytes
]

DIFFERENT = [
    # (hint, out, english_abbreviated message)
    (b"42\n", b"43\n", 'WRONG: line 1: expected "42", got "43"'),
    (b"1 2\n3 4\n", b"1 2\n3 5\n", 'WRONG: line 2: expected "4", got "5"'),
    (b"1.0\n", b"1\n", 'WRONG: line 1: expected "1.0", got "1"'),           # no numeric tolerance
    (b"Yes\n", b"YES\n", 'WRONG: line 1: expected "Yes", got "YES"'),       # no case folding
    (b"12\n", b"123\n", 'WRONG: line 1: expected "12", got "123"'),
    (b"1 2\n", b"1\n2\n", 'WRONG: line 1: expected "2", got end of line'),  # newline is a token
    (b"1\n2\n", b"1 2\n", 'WRONG: line 1: expected end of line, got "2"'),
    (b"1\n\n2\n", b"1\n2\n", 'WRONG: line 2: expected end of line, got "2"'),  # blank lines count
    (b"1\n", b"1 2\n", 'WRONG: line 1: expected end of file, got "2"'),
    (b"1 2", b"1", 'WRONG: line 1: expected "2", got end of file'),
    (b"1\n\n\n2\n", b"1\n", 'WRONG: line 4: expected "2", got end of file'),
    (b"1\n", b"1\n\n\n5\n", 'WRONG: line 4: expected end of file, got "5"'),
    (b"", b"x", 'WRONG: line 1: expected end of file, got "x"'),
    (b"a\fb", b"a b", 'WRONG: line 1: expected "a<0x0C>b", got "a"'),     # FF is not a separator
    (b"abc", b"ab\xffc", 'WRONG: line 1: expected "abc", got "ab<0xFF>c"'),
    (b"\x01\n", b"\x7f\n", 'WRONG: line 1: expected "<0x01>", got "<0x7F>"'),
    ("żółw\n".encode(), b"zolw\n", 'WRONG: line 1: expected "żółw", got "zolw"'),
    # valid UTF-8 but not printable: shown byte by byte
    ("a\u00a0b\n".encode(), b"ab\n", 'WRONG: line 1: expected "a<0xC2><0xA0>b", got "ab"'),
    (b"1\r\n2\r\n", b"1\r\n3\r\n", 'WRONG: line 2: expected "2", got "3"'),
]


@pytest.mark.parametrize("hint,out", EQUAL)
def test_equal_outputs(hint, out, chunk_size):
    assert cmp(hint, out) == CompareResult(True, "OK")
    assert cmp(out, hint) == CompareResult(True, "OK")


@pytest.mark.parametrize("hint,out,message", DIFFERENT)
def test_first_difference_message(hint, out, message, chunk_size):
    assert cmp(hint, out) == CompareResult(False, message)


def test_messages_in_every_format():
    hint, out = b"1\n2 3\n", b"1\n2 4\n"
    assert msg(hint, out, "english_abbreviated") == 'WRONG: line 2: expected "3", got "4"'
    assert msg(hint, out, "polish_abbreviated") == 'BŁĄD: wiersz 2: oczekiwano "3", otrzymano "4"'
    assert msg(hint, out, "english_terse") == "WRONG"
    assert msg(hint, out, "polish_terse") == "BŁĄD"
    assert msg(b"1\n", b"", "polish_abbreviated") == \
        'BŁĄD: wiersz 1: oczekiwano "1", otrzymano koniec pliku'
    assert msg(b"1 2\n", b"1\n2", "polish_abbreviated") == \
        'BŁĄD: wiersz 1: oczekiwano "2", otrzymano koniec wiersza'
    for fmt in CHECKER_FORMATS:
        assert cmp(b"1\n", b"1", fmt) == CompareResult(True, "OK")


def test_checker_format_default_and_errors():
    assert parse_checker_format(None) == ("english", "abbreviated")
    assert parse_checker_format("polish_terse") == ("polish", "terse")
    assert compare_outputs(io.BytesIO(b"1"), io.BytesIO(b"2"), None).message.startswith("WRONG: line 1")
    with pytest.raises(UnknownCheckerFormat) as e:
        cmp(b"1", b"1", "german_abbreviated")
    assert isinstance(e.value, ValueError) and isinstance(e.value, SioWorkersError)
    assert isinstance(e.value, UsageError)
    assert "german_abbreviated" in str(e.value)
    for fmt in CHECKER_FORMATS:
        assert fmt in str(e.value)


def test_long_tokens_are_abbreviated(chunk_size):
    m = msg(b"x" * 300 + b"\n", b"x" * 299 + b"y\n")
    shown = re.findall(r'"([^"]*)"', m)
    assert len(shown) == 2
    for s in shown:
        assert s == "x" * 97 + "…" and len(s.encode()) == 100
    # a token of exactly 100 bytes is shown whole
    assert msg(b"a" * 100, b"b") == f'WRONG: line 1: expected "{"a" * 100}", got "b"'
    # <0xNN> units and multi-byte characters are never cut
    shown = re.findall(r'"([^"]*)"', msg(b"\x01" * 50, b"z"))[0]
    assert shown == "<0x01>" * 16 + "…" and len(shown.encode()) <= 100
    shown = re.findall(r'"([^"]*)"', msg("ż".encode() * 60, b"z"))[0]
    assert shown == "ż" * 48 + "…"


def test_message_is_valid_utf8_for_any_bytes():
    rng = random.Random(5)
    for _ in range(300):
        hint = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        out = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        r = cmp(hint, out)
        r.message.encode("utf-8")  # no lone surrogates
        assert r.ok == (r.message == "OK")


def test_paths_are_accepted(tmp_path):
    (tmp_path / "hint").write_bytes(b"1 2\n")
    (tmp_path / "out").write_bytes(b"1 2")
    assert compare_outputs(tmp_path / "hint", str(tmp_path / "out")).ok
    assert diff_b_equal(tmp_path / "hint", tmp_path / "out")


def test_huge_outputs_are_streamed(tmp_path, comparator_impl):
    # 64 MiB of output, compared in constant memory: the difference is at the
    # very end, on a line whose number proves every newline was counted.
    line = b"1234567 89 1011121314\n"
    n = (64 << 20) // len(line)
    hint, out = tmp_path / "hint", tmp_path / "out"
    with open(hint, "wb") as h, open(out, "wb") as o:
        for _ in range(n // 4096):
            h.write(line * 4096)
            o.write(line.replace(b"\n", b" \r\n") * 4096)
        h.write(b"last\n")
        o.write(b"lost\n")
    lines = (n // 4096) * 4096 + 1
    assert compare_outputs(hint, out).message == \
        f'WRONG: line {lines}: expected "last", got "lost"'


def test_huge_single_token(tmp_path):
    big = b"7" * (5 << 20)
    assert cmp(big, big + b"\n").ok
    assert msg(big + b"1", big + b"2") == \
        'WRONG: line 1: expected "' + "7" * 97 + '…", got "' + "7" * 97 + '…"'
    assert msg(b"5 " + big, b"5\n" + big) == 'WRONG: line 1: expected "' + "7" * 97 + '…", got end of line'


# A reference model of the rules, written the obvious way (whole files in
# memory, a list of tokens), to check the streaming comparator against.

def _model_tokens(data: bytes) -> list[bytes]:
    toks = re.findall(rb"[^ \t\v\r\x00\n]+|\n", data)
    while toks and toks[-1] == b"\n":
        toks.pop()
    return toks


def _model(hint: bytes, out: bytes):
    a, b = _model_tokens(hint), _model_tokens(out)
    if a == b:
        return None
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    line = 1 + a[:i].count(b"\n")
    ta = a[i] if i < len(a) else None
    tb = b[i] if i < len(b) else None
    # End of file against end of line: what follows the newlines is shown.
    if ta is None and tb == b"\n":
        j = i
        while b[j] == b"\n":
            j += 1
        line, tb = line + j - i, b[j]
    elif tb is None and ta == b"\n":
        j = i
        while a[j] == b"\n":
            j += 1
        line, ta = line + j - i, a[j]
    return line, ta, tb


def _as_model(tok: _compare.Token):
    if tok.kind == _compare.EOF:
        return None
    if tok.kind == _compare.EOL:
        return b"\n"
    assert len(tok.head) == min(tok.length, 128)
    return tok.head


def _random_output(rng: random.Random) -> bytes:
    alphabet = [b"1", b"2", b"a", b" ", b"  ", b"\t", b"\n", b"\n\n", b"\r\n", b"\x00", b"\v",
                b"\f", b"\xff", b"12", b" \n"]
    return b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_streaming_comparator_matches_model(chunk, monkeypatch, comparator_impl):
    monkeypatch.setattr(_compare, "CHUNK_SIZE", chunk)
    rng = random.Random(chunk)
    for _ in range(3000):
        hint = _random_output(rng)
        out = _random_output(rng) if rng.random() < 0.5 else _mutate(rng, hint)
        d = _compare.first_difference(io.BytesIO(hint), io.BytesIO(out))
        got = None if d is None else (d.line, _as_model(d.expected), _as_model(d.got))
        assert got == _model(hint, out), (hint, out)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 3)):
        i = rng.randrange(len(data) + 1)
        op = rng.randrange(3)
        if op == 0 or not data:
            data[i:i] = rng.choice([b" ", b"\n", b"\t", b"3", b"\r"])
        elif op == 1:
            del data[min(i, len(data) - 1)]
        else:
            data[min(i, len(data) - 1)] = rng.choice(b" \n1a")
    return bytes(data)


# --------------------------------------------------------------------------
# diff -b
# --------------------------------------------------------------------------

DIFF_B = [
    (b"84", b"84\n", True),          # missing final newline ignored
    (b"84  \n", b"84\n", True),      # trailing whitespace ignored
    (b"84\r\n", b"84\n", True),      # CR is trailing whitespace
    (b"84\n\n", b"84\n", False),     # an extra blank line
    (b" 84\n", b"84\n", False),      # whitespace inserted where there was none
    (b"1 2\n", b"1\t \t2\n", True),  # a run equals any other non-empty run
    (b"12\n", b"1 2\n", False),
    (b"  x\n", b"\tx\n", True),      # leading runs of any length are equal
    (b"a\n \n", b"a\n\n", True),     # a whitespace-only line is an empty line
    (b"", b"\n", False),
    (b"", b"", True),
    (b"a\x00b\n", b"a b\n", False),  # NUL is not whitespace
    (b"A\n", b"a\n", False),
    (b"1.0\n", b"1\n", False),
]


@pytest.mark.parametrize("a,b,equal", DIFF_B)
def test_diff_b(a, b, equal, chunk_size):
    assert diff_b_equal(io.BytesIO(a), io.BytesIO(b)) is equal
    assert diff_b_equal(io.BytesIO(b), io.BytesIO(a)) is equal


def test_diff_b_huge(tmp_path, comparator_impl):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1 2 3\n" * 3_000_000)
    b.write_bytes(b"1  2\t3  \n" * 3_000_000)
    assert diff_b_equal(a, b)
    with open(b, "ab") as f:
        f.write(b"\n")
    assert not diff_b_equal(a, b)


def test_comparison_renv():
    assert comparison_renv(True, "OK") == {"result_code": "OK", "result_percentage": [100, 1]}
    assert comparison_renv(False, "WRONG") == \
        {"result_code": "WA", "result_percentage": [0, 1], "result_string": "WRONG"}
    assert comparison_renv(False) == \
        {"result_code": "WA", "result_percentage": [0, 1], "result_string": ""}
    assert len(comparison_renv(False, "x" * 5000)["result_string"]) == 1024


# --------------------------------------------------------------------------
# The checker output protocol
# --------------------------------------------------------------------------

@pytest.mark.parametrize("stdout,renv", [
    (b"OK\n", {"result_code": "OK", "result_percentage": [100, 1]}),
    (b"OK", {"result_code": "OK", "result_percentage": [100, 1]}),
    (b"OK\nhalf right\n50\n",
     {"result_code": "OK", "result_string": "half right", "result_percentage": [50, 1]}),
    (b"OK\n\n1/3\n", {"result_code": "OK", "result_percentage": [1, 3]}),
    (b"OK\n\n150\n", {"result_code": "OK", "result_percentage": [150, 1]}),
    (b"OK\nfine\n12.5\nmore\nlines\n",
     {"result_code": "OK", "result_string": "fine", "result_percentage": [25, 2]}),
    (b"WRONG\nbad answer\n50\n",
     {"result_code": "WA", "result_string": "bad answer", "result_percentage": [0, 1]}),
    (b"WRONG\n", {"result_code": "WA", "result_string": "", "result_percentage": [0, 1]}),
    (b"", {"result_code": "WA", "result_string": "", "result_percentage": [0, 1]}),
    (b"OK \nx\n", {"result_code": "WA", "result_string": "x", "result_percentage": [0, 1]}),
    (b"OK\r\nx\r\n", {"result_code": "WA", "result_string": "x\r", "result_percentage": [0, 1]}),
    (b"ok\n", {"result_code": "WA", "result_string": "", "result_percentage": [0, 1]}),
    (b"WRONG\n\xff\xfe\n", {"result_code": "WA", "result_string": "\ufffd\ufffd",
                            "result_percentage": [0, 1]}),
    # with WA the third line is not even parsed
    (b"WRONG\n\nnonsense\n", {"result_code": "WA", "result_string": "", "result_percentage": [0, 1]}),
    ("OK\nżółw\n".encode(), {"result_code": "OK", "result_string": "żółw",
                             "result_percentage": [100, 1]}),
])
def test_interpret_checker_output(stdout, renv):
    assert interpret_checker_output(stdout) == renv
    assert interpret_checker_output(stdout.decode("utf-8", "surrogateescape")) == renv


def test_interpret_invalid_percentage():
    with pytest.raises(CheckerError) as e:
        interpret_checker_output(b"OK\n\n42,5\n")
    assert "42,5" in str(e.value)


def test_checker_error_is_a_system_error():
    assert issubclass(CheckerError, SystemError)
    assert issubclass(CheckerError, SioWorkersError)


@pytest.mark.parametrize("text,fraction", [
    ("", (100, 1)),
    ("100", (100, 1)),
    ("0", (0, 1)),
    ("42", (42, 1)),
    ("42.", (42, 1)),
    ("42.5", (85, 2)),
    (".5", (1, 2)),
    ("1e5", (100000, 1)),
    ("2.5E-1", (1, 4)),
    ("007/0042", (1, 6)),
    ("1/3", (1, 3)),
    ("4/2", (2, 1)),
    ("-3", (-3, 1)),
    ("+7", (7, 1)),
    ("50%", (50, 1)),
    ("12.5%", (25, 2)),
    ("33\r", (33, 1)),
    (" 7 ", (7, 1)),
    (b"60", (3 * 20, 1)),
])
def test_output_to_fraction(text, fraction):
    # a tuple, as the original returned
    assert type(output_to_fraction(text)) is tuple
    assert output_to_fraction(text) == fraction


@pytest.mark.parametrize("text", [
    "42 2", "42,2", "42/2/1", "42/2.1", "42/", "/42", "/", "abc", "42/abc",
    ".", "e5", "1e", "%", "50%%", "1/3%", "inf", "nan", "0x10", "1_000", " ", "٣",
    "1e1001", "1" * 5000, "4 2/3",
])
def test_output_to_fraction_invalid(text):
    with pytest.raises(CheckerError, match="Invalid checker output, expected float, "
                                           "percent or fraction, got "):
        output_to_fraction(text)


@pytest.mark.parametrize("text", ["42/0", "0/0", "007/000"])
def test_output_to_fraction_zero_division(text):
    with pytest.raises(CheckerError, match="Zero division in checker output"):
        output_to_fraction(text)


def test_limit_result_string():
    assert limit_result_string("short") == "short"
    assert limit_result_string("x" * 1024) == "x" * 1024
    s = limit_result_string("x" * 1025)
    assert s == "x" * 1019 + "[...]" and len(s.encode()) == 1024
    # never half a character: 'ż' is 2 bytes, 1019 is odd
    s = limit_result_string("ż" * 600)
    assert s == "ż" * 509 + "[...]" and len(s.encode()) == 1023
    assert limit_result_string(b"\xff" * 10) == "\ufffd" * 10


def test_without_a_c_compiler_the_comparators_fall_back_to_python(tmp_path, monkeypatch, caplog):
    # A fresh cache and no compiler: the helper cannot be built, a warning
    # says so once, and the comparators still give the same answers.
    monkeypatch.setenv("SIO_ENGINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(_compare, "_native", [])
    assert _compare.native_helper() is None
    assert "compared in pure Python" in caplog.text
    assert msg(b"1 2\n3\n", b"1  2\r\n4\n") == 'WRONG: line 2: expected "3", got "4"'
    assert diff_b_equal(io.BytesIO(b"1 2\n"), io.BytesIO(b"1\t2  \n"))


def test_whitespace_changes_are_seen_at_every_offset(comparator_impl):
    # The C helper passes chunks that are already in canonical form through
    # untouched, checking them in blocks (of 255 and 4096 bytes): a change
    # on either side of a block edge must still be seen as one.
    hint = b"".join(b"%d %d\n" % (i, i * 7) for i in range(1200))
    assert len(hint) > 2 * 4096 + 2
    spaces = [i for i, c in enumerate(hint) if c == 0x20]
    for edge in (255, 510, 4095, 4096, 8192):
        k = min(spaces, key=lambda i: abs(i - edge))
        for sep in (b"  ", b"\t", b"\r", b"\x00", b" \n"[:1] + b" "):
            out = hint[:k] + sep + hint[k + 1:]
            assert cmp(hint, out).ok, (edge, sep)
        # a newline with a space before it, a space after it
        j = hint.index(b"\n", edge)
        assert cmp(hint, hint[:j] + b" \n " + hint[j + 1:]).ok
        assert diff_b_equal(io.BytesIO(hint), io.BytesIO(hint[:j] + b" \r\n" + hint[j + 1:]))
        assert not diff_b_equal(io.BytesIO(hint), io.BytesIO(hint[:j] + b"\n " + hint[j + 1:]))
        assert diff_b_equal(io.BytesIO(hint), io.BytesIO(hint[:k] + b"\t\f" + hint[k + 1:]))
