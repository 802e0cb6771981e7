"""Helpers for sandbox tests: archives built on the spot and a small HTTP
server on 127.0.0.1 that serves them with ``Last-Modified``."""

from __future__ import annotations

import email.utils
import io
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target`` (as written, relative or not)."""
    target: str


@dataclass(frozen=True)
class HardLink:
    """A hard link to ``target`` (a member name of the archive)."""
    target: str


Entry = bytes | str | Link | HardLink | None  # None: a directory


def archive(members: dict[str, Entry] | list[tuple[str, Entry]], *, compress: bool = True,
            mode: int = 0o755) -> bytes:
    """A tar(.gz) with exactly these member names, in this order (a list of
    pairs may name a member twice, as appended archives do)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, entry in (members.items() if isinstance(members, dict) else members):
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            info.mode = mode
            data = None
            if entry is None:
                info.type = tarfile.DIRTYPE
            elif isinstance(entry, Link):
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
            elif isinstance(entry, HardLink):
                info.type, info.linkname = tarfile.LNKTYPE, entry.target
            else:
                data = entry.encode() if isinstance(entry, str) else entry
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def sandbox_archive(name: str, files: dict[str, Entry], **kwargs) -> bytes:
    """An archive of sandbox ``name``: ``files`` are relative to its top
    directory; parent directories are added."""
    members: dict[str, Entry] = {name: None}
    for rel in files:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            members.setdefault(f"{name}/{'/'.join(parts[:i])}", None)
        members[f"{name}/{rel}"] = files[rel]
    return archive(members, **kwargs)


def busybox_tree(applets=("sh", "cat", "echo", "ls", "pwd", "wc", "tr")) -> dict[str, Entry]:
    """Files of a minimal root file system: a static busybox and its
    applets as relative links, or None when busybox-static is missing."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    try:
        data = Path(busybox).read_bytes()
    except OSError:
        return {}
    if b"/ld-linux" in data[:4096]:
        return {}  # it has an ELF interpreter: dynamically linked, no use in a chroot
    tree: dict[str, Entry] = {"bin/busybox": data, "tmp": None}
    tree.update({f"bin/{a}": Link("busybox") for a in applets})
    return tree


@dataclass
class Served:
    data: bytes
    mtime: float
    #: bytes actually sent before closing (a truncated download)
    cut_at: int | None = None


@dataclass
class ArchiveServer:
    """Serves ``/<name>.tar.gz`` from :attr:`files`; records requests."""

    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: seconds to sleep after each 64 KiB sent (a slow download)
    delay_per_chunk_s: float = 0.0
    url: str = ""

    def put(self, name: str, data: bytes, mtime: float | None = None,
            cut_at: int | None = None) -> None:
        self.files[f"/{name}.tar.gz"] = Served(data, mtime or time.time(), cut_at)

    def gets(self, name: str | None = None) -> int:
        return sum(1 for m, p in self.requests
                   if m == "GET" and (name is None or p == f"/{name}.tar.gz"))

    def reset(self) -> None:
        self.files.clear()
        self.requests.clear()
        self.delay_per_chunk_s = 0.0


def start_server(state: ArchiveServer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def _head(self) -> Served | None:
            state.requests.append((self.command, self.path))
            served = state.files.get(self.path)
            if served is None:
                self.send_error(404, "no such sandbox")
                return None
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(len(served.data)))
            self.send_header("Last-Modified", email.utils.formatdate(served.mtime, usegmt=True))
            self.end_headers()
            return served

        def do_HEAD(self):
            self._head()

        def do_GET(self):
            served = self._head()
            if served is None:
                return
            data = served.data if served.cut_at is None else served.data[:served.cut_at]
            for i in range(0, len(data), 1 << 16):
                self.wfile.write(data[i:i + (1 << 16)])
                self.wfile.flush()
                if state.delay_per_chunk_s:
                    time.sleep(state.delay_per_chunk_s)
            if served.cut_at is not None:
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
