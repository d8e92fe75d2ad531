"""Property-based test of the record state machine (hypothesis).

A RuleBasedStateMachine drives claim / complete / release / heartbeat / step
writes / lease expiry on two keys against a real store and checks every
answer against a ten-line model: who holds each key, at which epoch, in
which state, with which fingerprint, and whether the lease is live. Leases
are either long (never expire during a run) or "short": claimed with 20 ms
and then waited out, so expiry is deterministic without touching any clock.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, rule

from idemlint.runtime import KeyReuseError, LeaseLost, Store, open_store
from idemlint.runtime.stores.base import Claimed, Completed, InProgress, Lease

SHORT = 0.02
LONG = 60.0


@dataclass
class Model:
    status: str | None = None
    epoch: int = 0
    holder: int | None = None
    fingerprint: str = ""
    live: bool = False
    steps: set[str] = field(default_factory=set)


@dataclass
class Holder:
    ident: int
    key: str
    lease: Lease


def build_machine(store: Store) -> type[RuleBasedStateMachine]:
    class RecordMachine(RuleBasedStateMachine):
        holders = Bundle("holders")

        @initialize()
        def fresh_keys(self) -> None:
            prefix = uuid.uuid4().hex[:8]
            self.keys = [f"{prefix}:a", f"{prefix}:b"]
            self.model = {key: Model() for key in self.keys}
            self.next_id = 0

        def _lost(self, holder: Holder) -> bool:
            record = self.model[holder.key]
            return record.holder != holder.ident or record.status != "in_progress"

        @rule(
            target=holders,
            index=st.integers(0, 1),
            fp=st.sampled_from(["x", "y"]),
            short=st.booleans(),
        )
        def claim(self, index: int, fp: str, short: bool) -> object:
            key = self.keys[index]
            record = self.model[key]
            try:
                got = store.claim(key, fp, lease=SHORT if short else LONG, ttl=None)
            except KeyReuseError:
                assert record.status is not None and record.fingerprint != fp
                return None
            if record.status is None:
                expect = "new"
            elif record.fingerprint != fp:
                raise AssertionError(f"{key}: expected KeyReuseError, got {got}")
            elif record.status == "completed":
                assert isinstance(got, Completed) and got.epoch == record.epoch
                return None
            elif record.status == "in_progress" and record.live:
                assert isinstance(got, InProgress) and got.epoch == record.epoch
                return None
            else:
                expect = "retry" if record.status == "released" else "takeover"
            assert isinstance(got, Claimed), got
            assert got.lease.kind == expect and got.lease.epoch == record.epoch + 1
            self.next_id += 1
            record.status, record.epoch, record.holder = (
                "in_progress",
                got.lease.epoch,
                self.next_id,
            )
            record.fingerprint, record.live = fp, True
            if short:
                time.sleep(SHORT * 2)
                record.live = False
            return Holder(self.next_id, key, got.lease)

        @rule(holder=consumes(holders))
        def complete(self, holder: Holder | None) -> None:
            if holder is None:
                return
            record = self.model[holder.key]
            if self._lost(holder):
                with pytest.raises(LeaseLost):
                    store.complete(holder.lease, b"done", ttl=None)
                return
            store.complete(holder.lease, b"done", ttl=None)
            record.status, record.live = "completed", False

        @rule(holder=consumes(holders))
        def release(self, holder: Holder | None) -> None:
            if holder is None:
                return
            record = self.model[holder.key]
            if self._lost(holder):
                with pytest.raises(LeaseLost):
                    store.release(holder.lease, ttl=None)
                return
            store.release(holder.lease, ttl=None)
            record.status, record.live = "released", False

        @rule(holder=holders)
        def heartbeat(self, holder: Holder | None) -> None:
            if holder is None:
                return
            record = self.model[holder.key]
            if self._lost(holder):
                with pytest.raises(LeaseLost):
                    store.heartbeat(holder.lease, lease_seconds=LONG)
                return
            store.heartbeat(holder.lease, lease_seconds=LONG)
            record.live = True

        @rule(holder=holders, name=st.sampled_from(["s1", "s2"]))
        def save_step(self, holder: Holder | None, name: str) -> None:
            if holder is None:
                return
            record = self.model[holder.key]
            if self._lost(holder):
                with pytest.raises(LeaseLost):
                    store.save_step(holder.lease, name, b"v")
                return
            store.save_step(holder.lease, name, b"v")
            record.steps.add(name)
            assert set(store.load_steps(holder.lease)) == record.steps

        @rule(index=st.integers(0, 1))
        def inspect(self, index: int) -> None:
            key = self.keys[index]
            record = self.model[key]
            row = store.get(key)
            if record.status is None:
                assert row is None
                return
            assert row is not None
            assert (row.status, row.epoch, row.fingerprint) == (
                record.status,
                record.epoch,
                record.fingerprint,
            )
            assert (row.lease_expires > row.now) == (
                record.live and record.status == "in_progress"
            ) or (record.status != "in_progress")

    return RecordMachine


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql", "redis"])
def test_record_state_machine(backend: str, request: pytest.FixtureRequest, tmp_path) -> None:
    from _store_urls import backend_url, unique_store_url

    url = unique_store_url(backend_url(backend, request))
    store = open_store(url)
    machine = build_machine(store)
    machine.TestCase.settings = settings(
        max_examples=30 if backend == "sqlite" else 15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    try:
        machine.TestCase().runTest()
    finally:
        store.drop_schema()
        store.close()
