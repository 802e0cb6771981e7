"""GCC in compiler sandboxes: the version-named C and C++ compilers.

Each variant runs ``gcc``/``g++`` of its sandbox (``compiler-gcc.<version>``)
through :class:`~sio.workers.executors.PRootExecutor`, with the sandbox as
the root file system, exactly as the original did. When the sandbox layer
or the sandbox itself is not available the compilation fails with
:class:`~sio.compilers.common.SandboxUnavailable` naming the sandbox: it
never falls back to another compiler.

The variants (entry point, sandbox, flags) are the table :data:`VARIANTS`;
the libraries (``-lm``) follow the sources. ``default-c``/``c`` and
``default-cpp``/``default-cc``/``cpp``/``cc`` are :data:`run_c_default` and
:data:`run_cpp_default`: the system compilers unless the worker's
``SIO_DEFAULT_COMPILERS`` names another (see
:func:`~sio.compilers.common.default_compiler_name`).
"""

from __future__ import annotations

from typing import Any

from sio.compilers.common import DefaultCompiler
from sio.compilers.system_gcc import GCC, CStyleCompiler

__all__ = ["VARIANTS", "run_c_default", "run_cpp_default", "CCompiler", "CPPCompiler",
           "run_gcc", "run_gplusplus"]

_C = ["-static", "-O3", "-s"]

#: entry point -> (language, sandbox, flags, libraries)
VARIANTS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "gcc4_8_2_c99": ("c", "compiler-gcc.4_8_2", ["-std=gnu99", *_C], ["-lm"]),
    "gcc12_2_0_c17": ("c", "compiler-gcc.12_2_0", ["-std=c17", *_C], ["-lm"]),
    # The name says c17; the original's flag is gnu17.
    "gcc14_2_0_c17": ("c", "compiler-gcc.14_2_0", ["-std=gnu17", *_C], ["-lm"]),
    "g++4_8_2_cpp11": ("cpp", "compiler-gcc.4_8_2", ["-std=c++11", *_C], []),
    "g++6_3_cpp14": ("cpp", "compiler-gcc.6_3_0", ["-std=c++14", *_C], []),
    "g++8_3_cpp17": ("cpp", "compiler-gcc.8_3_0-i386", ["-std=c++17", *_C], []),
    "g++8_3_cpp17_amd64": ("cpp", "compiler-gcc.8_3_0-amd64", ["-std=c++17", *_C], []),
    "g++10_2_cpp17_amd64": ("cpp", "compiler-gcc.10_2_1", ["-std=c++17", *_C], []),
    "g++12_2_cpp20_amd64": ("cpp", "compiler-gcc.12_2_0", ["-std=c++20", *_C], []),
    "g++14_2_cpp23_amd64": ("cpp", "compiler-gcc.14_2_0", ["-std=c++23", *_C], []),
}


def _variant(name: str) -> GCC:
    lang, sandbox, flags, libs = VARIANTS[name]
    return GCC(name, lang, "gcc" if lang == "c" else "g++", flags=flags, libs=libs,
               sandbox=sandbox)


# The entry points' targets (the original's names).
run_c_gcc4_8_2_c99 = _variant("gcc4_8_2_c99")
run_c_gcc12_2_0_c17 = _variant("gcc12_2_0_c17")
run_c_gcc14_2_0_c17 = _variant("gcc14_2_0_c17")
run_cpp_gcc4_8_2_cpp11 = _variant("g++4_8_2_cpp11")
run_cpp_gcc6_3_cpp14 = _variant("g++6_3_cpp14")
run_cpp_gcc8_3_cpp17 = _variant("g++8_3_cpp17")
run_cpp_gcc8_3_cpp17_amd64 = _variant("g++8_3_cpp17_amd64")
run_cpp_gcc10_2_cpp17_amd64 = _variant("g++10_2_cpp17_amd64")
run_cpp_gcc12_2_cpp20_amd64 = _variant("g++12_2_cpp20_amd64")
run_cpp_gcc14_2_cpp23_amd64 = _variant("g++14_2_cpp23_amd64")

#: ``default-c``, ``c``
run_c_default = DefaultCompiler("c")
#: ``default-cpp``, ``default-cc``, ``cpp``, ``cc``
run_cpp_default = DefaultCompiler("cpp")


# --------------------------------------------------------------------------
# The original's names
# --------------------------------------------------------------------------

class CCompiler(CStyleCompiler):
    """The original's sandboxed C compiler class (see
    :class:`~sio.compilers.system_gcc.CStyleCompiler`):
    ``CCompiler.get_instance('gcc.12_2_0', 'c17')`` compiles with ``gcc`` of
    sandbox ``compiler-gcc.12_2_0`` and ``-std=c17 -static -O3 -s -lm``."""

    lang = "c"
    compiler = "gcc"

    @classmethod
    def get_instance(cls, sandbox: str, standard: str) -> CCompiler:
        obj = cls(sandbox)
        obj.options = [f"-std={standard}", *_C, "-lm"]
        return obj


class CPPCompiler(CStyleCompiler):
    """The original's sandboxed C++ compiler class:
    ``CPPCompiler.get_instance('gcc.14_2_0', 'c++23')`` compiles with
    ``g++`` of sandbox ``compiler-gcc.14_2_0`` and ``-std=c++23 -static -O3
    -s``."""

    lang = "cpp"
    compiler = "g++"

    @classmethod
    def get_instance(cls, sandbox: str, standard: str) -> CPPCompiler:
        obj = cls(sandbox)
        obj.options = [f"-std={standard}", *_C]
        return obj


def run_gcc(gcc_version: str, standard: str, environ: dict[str, Any]) -> dict[str, Any]:
    """Compile C with ``gcc`` of sandbox ``compiler-gcc.<gcc_version>`` and
    ``-std=<standard>`` (the latest original's helper, e.g.
    ``run_gcc('12_2_0', 'c17', environ)``)."""
    return CCompiler.get_instance("gcc." + gcc_version, standard).compile(environ)


def run_gplusplus(gcc_version: str, cpp_standard_year: int | str,
                  environ: dict[str, Any]) -> dict[str, Any]:
    """Compile C++ with ``g++`` of sandbox ``compiler-gcc.<gcc_version>`` and
    ``-std=c++<cpp_standard_year>`` (e.g. ``run_gplusplus('14_2_0', 23,
    environ)``)."""
    return CPPCompiler.get_instance("gcc." + gcc_version,
                                    f"c++{cpp_standard_year}").compile(environ)


# The Celery-era original's names of its entry points' targets.
run_gcc4_8_2_c99 = run_c_gcc4_8_2_c99
run_gplusplus4_8_2_cpp11 = run_cpp_gcc4_8_2_cpp11
run_gcc_default = run_c_default
run_gplusplus_default = run_cpp_default
