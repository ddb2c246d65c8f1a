"""A distributed job seen through `torch.distributed`: only the torch calls live here.

Who measures what (`src/job.rs`) and how the job's row is made of its ranks' rows
(`src/output/job.rs`) is decided in the core, reached through the tracker's private `_job()`
handle; this module only moves the ranks' facts and rows through the job's own
rendezvous key-value store (the process group's `TCPStore`, `FileStore`, ...). Rank 0 waits for
them with a bounded `store.wait`, never a collective that user code might not reach, so a rank
that died only costs one bounded wait and is then reported in the job row's `missing_ranks`.
"""

from __future__ import annotations

import itertools
import logging
import sys
from datetime import timedelta
from typing import Any

from carbonmeter._core import EmissionsData, EmissionsTracker, _JobHandle, _warn_once

logger = logging.getLogger("carbonmeter")

#: Prefix of every key carbonmeter puts in the job's store.
PREFIX = "carbonmeter"

# Numbers the job links of the process: each link's warnings are its own.
_LINKS = itertools.count()


#: What a store's calls raise when it fails: torch's `DistError`s derive from `RuntimeError`;
#: sockets give `OSError`.
STORE_ERRORS = (RuntimeError, OSError)


def _store_failed(err: Exception, where: str) -> None:
    logger.warning(
        "the job's key-value store failed %s (%s): this rank writes its own rows from now on, "
        "with no job row from it",
        where,
        err,
    )


def _torch_distributed() -> Any | None:
    """`torch.distributed` when the user's code has imported torch and initialised a process
    group; torch is never imported here for a job that does not use it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def _current_gpu_uuid() -> str | None:
    """NVML's UUID (`GPU-...`) of torch's current CUDA device, when CUDA is in use."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
    except (RuntimeError, AttributeError, AssertionError):
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _default_store(dist: Any) -> Any | None:
    """The process group's key-value store; `None` (with a warning) where it cannot be had."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError) as err:
        logger.warning(
            "cannot reach the process group's key-value store (%s): each rank writes its "
            "own rows, with no job row",
            err,
        )
        return None


class JobLink:
    """One run of a tracker as a rank of a job: its facts published, its rows sent to rank 0,
    and on rank 0 the job's rows written."""

    def __init__(
        self, tracker: EmissionsTracker, store: Any, rank: int, world_size: int, generation: int
    ) -> None:
        self._job: _JobHandle = tracker._job()
        self._store = store
        self.rank = rank
        self.world_size = world_size
        self._prefix = f"{PREFIX}/{generation}"
        self._wait_s = self._job.wait_secs
        # Ranks that missed a wait: reported missing from then on, never waited for again.
        self._gone: set[int] = set()
        self._read: list[str] = []
        # This link's warnings are its own: a later job of the process says its ranks again.
        self._causes = f"job/{next(_LINKS)}"
        # The store's first failure (its server gone with a dead rank 0, a closed store): from
        # then on this rank writes only its own rows.
        self._broken: Exception | None = None
        # With stop_over_budget, rank 0 decides on the job's budget at every epoch edge and the
        # others wait for that decision; without it, an edge costs no extra round trip.
        self._decides = self._job.stop_over_budget

    @classmethod
    def join(cls, tracker: EmissionsTracker) -> JobLink | None:
        """Joins the job of the initialised process group before `tracker` starts (so it
        measures only its share); `None` without a process group of two or more ranks."""
        dist = _torch_distributed()
        if dist is None or dist.get_world_size() < 2:
            return None
        store = _default_store(dist)
        if store is None:
            return None
        rank, world_size = dist.get_rank(), dist.get_world_size()
        try:
            # Each rank adds 1 once per run: runs of one process group get their own keys.
            generation = (store.add(f"{PREFIX}/runs", 1) - 1) // world_size
            link = cls(tracker, store, rank, world_size, generation)
            link._put("member", link._job.member(rank, _current_gpu_uuid()))
            members, missing = link._collect("member")
        except STORE_ERRORS as err:
            _store_failed(err, "at the start")
            return None
        link._job.join(members, rank, world_size)
        if missing:
            link._warn(missing, "the start")
        return link

    def edge(self, data: EmissionsData, run: bool = False) -> EmissionsData | None:
        """Sends this rank's row of a window (or of the run) to rank 0; on rank 0, waits for
        the others' and returns the job's row (written), else `None`. A failing store costs
        one warning, never the training: the rank's own rows are already written."""
        if self._broken is None:
            try:
                return self._edge(data, run)
            except STORE_ERRORS as err:
                self._broken = err
                _store_failed(err, "at an edge")
        if self._decides and not run and self.rank != 0:
            # The epoch row held for rank 0's decision is written now, with none.
            return self._job.decision(False)
        return None

    def _edge(self, data: EmissionsData, run: bool) -> EmissionsData | None:
        name = "run" if run else f"window/{data.window}"
        self._put(name, data._json())
        decided = self._decides and not run
        if self.rank != 0:
            return self._decision(data.window) if decided else None
        rows, missing = self._collect(name)
        if missing:
            self._warn(missing, "the run's end" if run else f"window {data.window!r}")
        job = self._job.row(rows, missing, run)
        if decided:
            # After the job's row is written: the core took the decision on it.
            key = f"{self._prefix}/budget/{data.window}"
            self._store.set(key, (job.stop_reason if job is not None else None) or "")
            self._read.append(key)
        if run:
            self._forget()
        return job

    def _decision(self, window: str | None) -> EmissionsData | None:
        """Rank 0's decision on the job's budget at this epoch edge, waited for at most twice
        `job_wait_secs` (rank 0 may first wait that long for a stalled rank); returns this
        rank's epoch row written with it. A rank 0 gone past the wait stops nobody."""
        stop = False
        if 0 not in self._gone:
            key = f"{self._prefix}/budget/{window}"
            try:
                self._store.wait([key], timedelta(seconds=2 * self._wait_s))
                stop = bool(self._store.get(key))
            except Exception:  # the store's timeout error type differs between torch versions
                self._gone.add(0)
                logger.warning(
                    "rank 0 sent no decision on the job's carbon budget within %g s at window "
                    "%r (dead or stalled): this rank does not stop for the budget, and does "
                    "not wait for rank 0's decision again",
                    2 * self._wait_s,
                    window,
                )
        return self._job.decision(stop)

    def _put(self, name: str, value: str) -> None:
        self._store.set(f"{self._prefix}/{name}/{self.rank}", value)

    def _collect(self, name: str) -> tuple[list[str], list[int]]:
        """Every rank's value of `name`, waiting at most `job_wait_secs` for those not yet
        there; returns them in rank order and the ranks that never sent theirs."""
        keys = {
            rank: f"{self._prefix}/{name}/{rank}"
            for rank in range(self.world_size)
            if rank not in self._gone
        }
        try:
            self._store.wait(list(keys.values()), timedelta(seconds=self._wait_s))
            present = list(keys)
        except Exception:  # the store's timeout error type differs between torch versions
            present = [rank for rank, key in keys.items() if self._check(key)]
        self._gone.update(set(keys) - set(present))
        wanted = [keys[rank] for rank in present]
        # One round trip for all of them where the store can (TCPStore, torch >= 2.4).
        values = self._store.multi_get(wanted) if hasattr(self._store, "multi_get") else None
        if values is None:
            values = [self._store.get(key) for key in wanted]
        if name != "member":
            self._read.extend(wanted)
        return [value.decode() for value in values], sorted(self._gone)

    def _forget(self) -> None:
        """Deletes the rows rank 0 has read and the budget decisions it wrote, at the run's
        end (every rank that sent its run row has read them all): the edges pay no round trip
        for it, and the store holds one run's rows at most."""
        for key in self._read:
            self._delete(key)
        self._read.clear()

    def _check(self, key: str) -> bool:
        try:
            return bool(self._store.check([key]))
        except RuntimeError:
            return False

    def _delete(self, key: str) -> None:
        try:
            self._store.delete_key(key)
        except (RuntimeError, NotImplementedError) as err:
            # Some stores cannot delete (torch's FileStore and PrefixStore over it raise
            # NotImplementedError) and a closed store raises RuntimeError: a key left behind
            # holds one finished row, never read again, so cleanup is best effort.
            logger.debug("store key %s left behind: %r", key, err)

    def _warn(self, missing: list[int], where: str) -> None:
        ranks = ", ".join(str(rank) for rank in missing)
        _warn_once(
            f"{self._causes}/missing-ranks",
            f"rank(s) {ranks} sent no figures within {self._wait_s:g} s at {where} (dead or "
            "stalled): the job's rows leave them out and name them in missing_ranks, and they "
            "are not waited for again",
        )


#: Keys of plain trackers' runs: `started/<rank>` counts a rank's runs (its announcement),
#: `row/<run>/<rank>` holds the run row of that rank's `run`-th run until rank 0 reads it.
TRACKERS = f"{PREFIX}/trackers"

# Ranks that once sent no row in time, per store: never waited for again (a dead rank costs
# one bounded wait, not one per run).
_GONE: dict[int, set[int]] = {}


class TrackerLink:
    """One run of a plain `EmissionsTracker` on a rank of the process group's job.

    Its start announces it (the rank's count of runs grows by one), so rank 0 waits only for
    ranks that run a tracker; its stop sends its run row to rank 0. On rank 0, the stop of its
    n-th run gathers the n-th run rows of the ranks that started one, waiting at most
    `job_wait_secs` for those not there yet, and writes the job's run row: what its `stop()`
    returns. Where no other rank started a tracker, nothing is waited for.
    """

    def __init__(self, handle: _JobHandle, store: Any, rank: int, world_size: int, run: int):
        self._job = handle
        self._store = store
        self.rank = rank
        self.world_size = world_size
        self.run = run
        self._gone = _GONE.setdefault(id(store), set())

    @classmethod
    def start(cls, handle: _JobHandle) -> TrackerLink | None:
        """Announces a run just started on this rank; `None` without a process group of two or
        more ranks."""
        dist = _torch_distributed()
        if dist is None or dist.get_world_size() < 2:
            return None
        store = _default_store(dist)
        if store is None:
            return None
        rank, world_size = dist.get_rank(), dist.get_world_size()
        try:
            run = store.add(f"{TRACKERS}/started/{rank}", 1) - 1
        except STORE_ERRORS as err:
            _store_failed(err, "at a tracker's start")
            return None
        return cls(handle, store, rank, world_size, run)

    def _row_key(self, rank: int) -> str:
        return f"{TRACKERS}/row/{self.run}/{rank}"

    def stopped(self, data: EmissionsData) -> EmissionsData | None:
        """Sends this run's row to rank 0; on rank 0 returns the job's run row (written)."""
        try:
            if self.rank != 0:
                self._store.set(self._row_key(self.rank), data._json())
                return None
            return self._gather(data)
        except STORE_ERRORS as err:
            _store_failed(err, "at a tracker's stop")
            return None

    def _gather(self, data: EmissionsData) -> EmissionsData | None:
        peers = [
            rank
            for rank in range(1, self.world_size)
            if rank not in self._gone
            and self._store.add(f"{TRACKERS}/started/{rank}", 0) > self.run
        ]
        keys = {rank: self._row_key(rank) for rank in peers}
        present = peers
        if keys:
            wait_s = self._job.wait_secs
            try:
                self._store.wait(list(keys.values()), timedelta(seconds=wait_s))
            except Exception:  # the store's timeout error type differs between torch versions
                present = [rank for rank in peers if _check(self._store, keys[rank])]
            missing = sorted(set(peers) - set(present))
            if missing:
                self._gone.update(missing)
                ranks = ", ".join(map(str, missing))
                _warn_once(
                    f"trackers/missing/{id(self._store)}/{ranks}",
                    f"rank(s) {ranks} started a tracker but sent no figures within {wait_s:g} s "
                    "of rank 0's stop (dead or stalled): the job's rows leave them out and name "
                    "them in missing_ranks, and they are not waited for again",
                )
        else:
            missing = []
        wanted = [keys[rank] for rank in present]
        values = [self._store.get(key) for key in wanted]
        for key in wanted:
            _delete(self._store, key)
        rows = [data._json(), *(value.decode() for value in values)]
        return self._job.row(rows, missing, True)


def _check(store: Any, key: str) -> bool:
    try:
        return bool(store.check([key]))
    except RuntimeError:
        return False


def _delete(store: Any, key: str) -> None:
    try:
        store.delete_key(key)
    except (RuntimeError, NotImplementedError) as err:
        logger.debug("store key %s left behind: %r", key, err)


def link_run(handle: _JobHandle) -> TrackerLink | None:
    """The core's hook at a plain tracker's start on a rank of a job (see `TrackerLink`)."""
    return TrackerLink.start(handle)
