"""Mechanism of :mod:`sio.workers.batch`: the SQLite store of batches
(:mod:`.store`), the local pool of worker processes (:mod:`.local`, with the
worker loop in :mod:`.worker`), the client of the daemon's group calls
(:mod:`.daemon`) and the progress display (:mod:`.progress`).

Nothing here is public API; :mod:`sio.workers.batch` is.
"""
