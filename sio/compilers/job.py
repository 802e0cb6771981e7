"""The ``compile`` job (:func:`run`) and ``sio-compile`` (:func:`main`).

The compiler is ``environ['compiler']`` up to its first ``.`` (so
``'g++14_2_cpp23_amd64.anything'`` is ``g++14_2_cpp23_amd64``), looked up
in the entry-point group ``sio.compilers``; without that key it is
``default-<extension of source_file>``. See :mod:`sio.compilers.common` for
every key a compiler reads and writes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from sio.workers.errors import MissingEnvironKey, SioWorkersError, UsageError
from sio.workers.util import first_entry_point

logger = logging.getLogger(__name__)

__all__ = ["run", "main", "get_compiler", "compiler_name", "COMPILERS_GROUP"]

COMPILERS_GROUP = "sio.compilers"


class CompilerContractError(SioWorkersError, AssertionError):
    """A compiler returned without ``result_code`` or ``compiler_output``."""


def compiler_name(environ: dict[str, Any]) -> str:
    """The entry-point name of the compiler the environ asks for."""
    name = environ.get("compiler")
    if not name:
        try:
            source = environ["source_file"]
        except KeyError:
            raise MissingEnvironKey("source_file", "the compile job") from None
        base = os.path.basename(str(source)).split("@")[0]
        ext = os.path.splitext(base)[1][1:].lower()
        if not ext:
            raise UsageError(f"environ['source_file'] = {source!r} has no extension and "
                             "environ has no 'compiler': give one of them")
        return "default-" + ext
    if not isinstance(name, str):
        raise UsageError(f"environ['compiler'] must be a string, not {name!r}")
    return name.split(".", 1)[0]


def get_compiler(name: str) -> Any:
    """The compiler registered as ``name`` in group ``sio.compilers``.

    :raises EntryPointNotFound: naming the compilers that exist.
    """
    return first_entry_point(COMPILERS_GROUP, name)


def run(environ: dict[str, Any]) -> dict[str, Any]:
    """Compile ``environ['source_file']`` into ``environ['out_file']``.

    Writes ``result_code`` (``OK``/``CE``), ``compiler_output`` (str),
    ``exec_info`` and ``out_file`` (the stored, versioned name); see
    :mod:`sio.compilers.common` for the keys read (limits in ms, KiB and
    bytes). Runs in the job's temporary directory, or in a fresh one when
    called outside a job.

    :raises EntryPointNotFound: unknown compiler.
    :raises CompilerNotInstalled, SandboxUnavailable: the compiler cannot run
        on this worker (an infrastructure fault, not a CE).
    """
    from sio.workers.errors import NoTemporaryCwd
    from sio.workers.util import TemporaryCwd, tempcwd

    try:
        tempcwd()
    except NoTemporaryCwd:
        with TemporaryCwd():
            return run(environ)
    name = compiler_name(environ)
    compiler = get_compiler(name)
    logger.debug("compiling %s with %s (%r)", environ.get("source_file"), name, compiler)
    environ = compiler(environ)
    missing = [k for k in ("result_code", "compiler_output") if k not in environ]
    if missing:
        raise CompilerContractError(f"compiler {name!r} returned without "
                                    + " and ".join(map(repr, missing)))
    return environ


# --------------------------------------------------------------------------
# sio-compile
# --------------------------------------------------------------------------

USAGE = """\
usage: sio-compile [--debug] [--filetracker URL] SOURCE OUTPUT [COMPILER [ARGS...]]

Compile SOURCE into OUTPUT with the compile job and print the resulting
environ between the lines
  --- BEGIN ENVIRON ---
  --- END ENVIRON ---
as one line of JSON (nothing else goes to standard output).

SOURCE and OUTPUT are local files, absolute or relative to the current
directory; missing directories of OUTPUT are created. With --filetracker,
names starting with '/' are Filetracker names on the server at URL (other
names stay local). The compilation itself runs in a temporary directory,
removed afterwards; a missing or unwritable OUTPUT is reported before
compiling.

COMPILER is a name in entry-point group sio.compilers (system-g++,
g++14_2_cpp23_amd64, output-only, ...) or a language (cpp, c, pas, java,
py), which means default-<language>; by default the extension of SOURCE
decides. ARGS are extra compilation arguments, passed to the compiler
after its own options.

Exit status: 0 compiled (OK), 1 compilation error (CE), 2 usage error
(bad arguments, unknown compiler, missing SOURCE, OUTPUT a directory or not
writable), 3 the compiler could not run (not installed, sandbox missing,
Filetracker unreachable).

options:
  -h, --help         show this help and exit
  --debug            log at DEBUG level and show the traceback of a failure
  --filetracker URL  names starting with '/' are files on the Filetracker
                     server at URL (e.g. http://127.0.0.1:9999)
"""


def _cli_compiler(name: str) -> str:
    name = name.lower()
    if "-" in name:
        return name
    from sio.workers.util import entry_point_names

    # A registered name without a dash (g++14_2_cpp23_amd64, cpp, java1_8) is
    # used as is; the original always made it default-<name>.
    return name if name in entry_point_names(COMPILERS_GROUP) else "default-" + name


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sio-compile``; returns the exit status."""
    from sio.workers._cli import result_only_stdout
    from sio.workers.errors import EntryPointNotFound
    from sio.workers.results import ResultCode
    from sio.workers.runner import _print_environ
    from sio.workers.util import TemporaryCwd

    args = list(sys.argv[1:] if argv is None else argv)
    debug = False
    filetracker_url = None
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if option == "--debug":
            debug = True
        elif option == "--filetracker" or option.startswith("--filetracker="):
            if "=" in option:
                filetracker_url = option.split("=", 1)[1]
            elif args:
                filetracker_url = args.pop(0)
            if not filetracker_url:
                sys.stderr.write("sio-compile: error: --filetracker needs a URL "
                                 "(see sio-compile --help)\n")
                return 2
        elif option == "--":
            break
        else:
            sys.stderr.write(f"sio-compile: error: unknown option {option!r} "
                             "(see sio-compile --help)\n")
            return 2
    if len(args) < 2:
        sys.stderr.write("sio-compile: error: give SOURCE and OUTPUT (see sio-compile --help)\n")
        return 2
    logging.basicConfig(format="%(asctime)-15s %(name)s %(levelname)s: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)
    environ: dict[str, Any] = {
        "source_file": args[0],
        "out_file": args[1],
        # Local files unless Filetracker was asked for: a command-line
        # compiler reads and writes the user's files, absolute paths too.
        "use_filetracker": "auto" if filetracker_url else False,
        "extra_compilation_args": args[3:],
    }
    from sio.compilers.common import CompilerError
    from sio.workers import ft

    try:
        if len(args) > 2:
            environ["compiler"] = _cli_compiler(args[2])
        with result_only_stdout(), TemporaryCwd():
            if filetracker_url:
                ft.init_instance(filetracker_url)
            environ = run(environ)
    except Exception as e:
        if debug:
            raise
        # CompilerNotInstalled is a FileNotFoundError too: check it first.
        if isinstance(e, CompilerError):
            status = 3
        elif isinstance(e, (UsageError, EntryPointNotFound, FileNotFoundError)):
            status = 2
        else:
            status = 3
        sys.stderr.write(f"sio-compile: error: {e}\n" if status == 2 else
                         f"sio-compile: error: {type(e).__name__}: {e}\n")
        return status
    _print_environ(environ)
    return 0 if environ.get("result_code") == ResultCode.OK else 1


if __name__ == "__main__":
    sys.exit(main())
