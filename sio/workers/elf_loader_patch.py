"""The ``elf_loader_patch`` sandbox fixup: the original's module name.

The fixup itself is part of :mod:`sio.workers.sandbox` (applied when a
sandbox with a 32-bit loader ``lib/ld-linux.so.2`` is installed, see
:doc:`sandboxes`): every executable ELF file of the sandbox is renamed to
``<file>`` + :data:`EXT` and replaced by a small script that runs it with
the sandbox's own loader and libraries. This module keeps the original's
public name for code that looks for the unpatched programs.
"""

from __future__ import annotations

from sio.workers.sandbox import _UNPATCHED_SUFFIX

__all__ = ["EXT"]

#: Suffix of the original (unpatched) program beside its patched script.
EXT = _UNPATCHED_SUFFIX
