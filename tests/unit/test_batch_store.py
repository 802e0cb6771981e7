"""The store of batches (sio.workers._batch.store): one file, no processes."""

from __future__ import annotations

import json
import os

import pytest

from sio.workers._batch.store import (
    DONE, FAILED, PENDING, RUNNING, Outcome, Store, UnknownBatch, new_owner, owner_alive)
from sio.workers.errors import UsageError


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "sub" / "b.sqlite") as s:
        yield s


def test_first_result_wins_and_duplicates_are_dropped(store):
    batch_id = store.create([json.dumps({"n": i}) for i in range(3)], "local", {"jobs": 1})
    assert store.record(batch_id, [Outcome(1, False, '{"r": 1}')], started=[0, 1]) == (1, 0)
    # the same item again (a job that ran twice): dropped
    assert store.record(batch_id, [Outcome(1, True, '{"r": 2}', "E: x", "tb")]) == (0, 0)
    assert store.record(batch_id, [Outcome(2, True, '{"r": 3}', "E: y", "tb")]) == (0, 1)
    rows = list(store.items(batch_id))
    assert [(r[0], r[2], r[3]) for r in rows] == [(0, RUNNING, None), (1, DONE, '{"r": 1}'),
                                                  (2, FAILED, '{"r": 3}')]
    c = store.counts(batch_id)
    assert (c.total, c.pending, c.running, c.done, c.failed, c.complete) == (3, 0, 1, 1, 1, False)
    assert store.unfinished(batch_id) == [(0, '{"n": 0}')]


def test_ownership(store):
    batch_id = store.create(["{}"], "local", {"jobs": 1})
    me = new_owner()
    store.claim(batch_id, me)
    assert owner_alive(store.batch(batch_id).owner, store.batch(batch_id).heartbeat)
    with pytest.raises(UsageError, match=f"process {os.getpid()}"):
        store.claim(batch_id, new_owner())
    store.mark(batch_id, [0], RUNNING)
    store.release(batch_id, me)
    row = store.batch(batch_id)
    assert row.owner is None and not owner_alive(row.owner, row.heartbeat)
    assert list(store.items(batch_id))[0][2] == PENDING  # lost with its runner
    # on this host: that very process, whatever the heartbeat says
    host, pid, token = me.rsplit(":", 2)
    assert owner_alive(me, None)
    assert not owner_alive(f"{host}:999999999:{token}", 1e18)  # no such pid
    assert not owner_alive(f"{host}:{pid}:1.{token}", 1e18)  # an earlier process of this pid
    # on another host: the heartbeat
    assert owner_alive(f"elsewhere:{pid}:{token}", 1000.0, now=1010.0)
    assert not owner_alive(f"elsewhere:{pid}:{token}", 1000.0, now=2000.0)


def test_unknown_batch_and_a_second_connection(store, tmp_path):
    with pytest.raises(UnknownBatch, match="no batch 'nope'"):
        store.batch("nope")
    batch_id = store.create(["{}", "{}"], "http://d:7889", {}, group_id="GROUP_x")
    with Store(store.path) as other:
        row = other.batch(batch_id)
        assert (row.backend, row.group_id, row.total, row.is_local) == ("http://d:7889", "GROUP_x",
                                                                        2, False)
        other.delete(batch_id)
    assert store.batches() == []
