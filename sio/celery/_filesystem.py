"""kombu's ``filesystem://`` transport with atomic message files.

kombu 5.7 creates a message file under its final ``*.msg`` name and only
then writes into it; a consumer that lists the folder in between moves the
file away and reads it empty (``JSONDecodeError``: the message is lost). It
happened within 100 jobs on these machines. Here the message is written
under a name no consumer picks (``*.partial``) and renamed into place, which
is atomic within one directory. Files, names and order are otherwise
kombu's, so stock kombu processes can share the folders.

:class:`sio.celery.app.SioCelery` makes the ``filesystem`` scheme use this
transport.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: The value of kombu's transport alias ``filesystem`` that selects this module.
TRANSPORT = "sio.celery._filesystem:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's name: the millisecond prefix keeps the queue FIFO.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"{uuid.uuid4()}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(message)))
            os.rename(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make the ``filesystem`` scheme of kombu use this transport (in this process)."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["filesystem"] = TRANSPORT
