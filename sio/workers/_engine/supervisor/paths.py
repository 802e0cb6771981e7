"""Paths every supervised program may read (kept apart from :mod:`.policy` so
that the spawner imports no more than it needs)."""

from __future__ import annotations

#: Read-only paths every program may open: what the dynamic loader and libc
#: read at start-up. Anything else needs ``Policy.read_paths`` (or
#: ``Policy.allow_local_open`` for the working directory).
SYSTEM_READ_PATHS: tuple[str, ...] = (
    "/lib", "/lib32", "/lib64", "/libx32", "/usr/lib", "/usr/lib32", "/usr/lib64",
    "/usr/libx32", "/usr/local/lib",
    "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime",
    # glibc's locale aliases: read by setlocale() for a locale that is not
    # installed as named (the programs' LC_ALL is en_US.UTF-8)
    "/usr/share/locale/locale.alias", "/etc/locale.alias",
)
