"""The batch runner alone: a fake provider batch API behind the real engine and ledger (no HTTP, no Prefect).

Journal before waiting, reattach instead of resubmitting, the unfinished-items policy, the budget gate, a
batch the provider forgot, and batch prices."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from specstress.domain import CallRequest, Outcome, Usage
from specstress.prices import ModelPrice
from specstress.providers.base import BatchItem, ProviderError, RawReply
from specstress.providers.engine import CallEngine
from specstress.runspec import BatchSpec
from specstress.warehouse.ledger import BATCH_SUBMITTED, Ledger
from specstress.warehouse.store import Warehouse

_ids = itertools.count(1)


class FakeBatches:
    """A provider batch API in memory. ``pending_polls`` status checks answer pending before a batch ends;
    ``unfinished(key, attempt)`` says whether an item goes unanswered (expired) in its n-th batch."""

    provider = "openai"

    def __init__(self, pending_polls: int = 2, unfinished=None, forget: bool = False) -> None:
        self.pending_polls = pending_polls
        self.unfinished = unfinished or (lambda key, n: False)
        self.forget = forget
        self.batches: dict[str, dict] = {}
        self.submissions: dict[str, int] = {}
        self.realtime: list[str] = []

    async def batch_submit(self, reqs: list[CallRequest], label: str) -> str:
        bid = f"batch_{next(_ids)}"
        for r in reqs:
            self.submissions[r.key] = self.submissions.get(r.key, 0) + 1
        self.batches[bid] = {"keys": [r.key for r in reqs], "polls": 0,
                             "attempt": {r.key: self.submissions[r.key] for r in reqs}}
        return bid

    async def batch_status(self, bid: str) -> str:
        if self.forget or bid not in self.batches:
            raise ProviderError("not_found", f"no batch {bid}", status=404)
        b = self.batches[bid]
        b["polls"] += 1
        return "ended" if b["polls"] > self.pending_polls else "pending"

    async def batch_results(self, bid: str, reqs: dict) -> dict[str, BatchItem]:
        b = self.batches[bid]
        out = {}
        for k in b["keys"]:
            if self.unfinished(k, b["attempt"][k]):
                out[k] = BatchItem(k, unfinished="expired")
            else:
                out[k] = BatchItem(k, reply=RawReply(Outcome.OK, text=f"answer {k[:6]}",
                                                     usage=Usage(input_tokens=1000, output_tokens=1000)))
        return out

    async def batch_cancel(self, bid: str) -> None:
        pass

    async def complete(self, req: CallRequest) -> RawReply:
        self.realtime.append(req.key)
        return RawReply(Outcome.OK, text="realtime", usage=Usage(input_tokens=1000, output_tokens=1000))

    async def embed(self, req: CallRequest) -> RawReply:
        raise AssertionError

    async def aclose(self) -> None:
        pass


PRICE = ModelPrice(input=1.0, output=1.0)   # $0.002 a call at realtime, $0.001 in a batch


def _engine(tmp_path, api: FakeBatches, budget: float = 100.0, **cfg) -> CallEngine:
    spec = BatchSpec(mode="batch", poll_s=0.01, **cfg)
    ledger = Ledger(Warehouse(str(tmp_path / "wh")), wal=True)
    return CallEngine(ledger, lambda req: api, run_id="run-test", price_for=lambda req: PRICE, budget_usd=budget,
                      batched=lambda req, stage: True, batch=spec)


def _reqs(n: int, tag: str = "") -> list[CallRequest]:
    return [CallRequest(provider="openai", model="m", model_id="m", messages=[{"role": "user", "content": f"q{tag}{i}"}],
                        params={"max_tokens": 100}) for i in range(n)]


def _ledger_rows(tmp_path) -> list[dict]:
    led = Ledger(Warehouse(str(tmp_path / "wh")))
    return led.wh.read_table(led.files()).to_pylist()


def test_batched_calls_are_journalled_before_waiting_then_answered_at_the_batch_price(tmp_path):
    api = FakeBatches()
    eng = _engine(tmp_path, api)
    try:
        reqs = _reqs(5)
        out = eng.run_calls(reqs, "responses")
    finally:
        eng.close()
    assert [r.outcome for r in out] == [Outcome.OK] * 5
    assert len(api.batches) == 1 and set(api.submissions.values()) == {1}
    rows = _ledger_rows(tmp_path)
    bid = next(iter(api.batches))
    journal = [r for r in rows if r["outcome"] == BATCH_SUBMITTED]
    answers = [r for r in rows if r["final"]]
    assert {r["key"] for r in journal} == {r.key for r in reqs} and {r["batch_id"] for r in journal} == {bid}
    assert not any(r["final"] for r in journal)
    assert all(j["finished_at"] <= min(a["finished_at"] for a in answers) for j in journal)
    assert {r["batch_id"] for r in answers} == {bid}
    assert sum(r["cost_usd"] for r in answers) == pytest.approx(5 * 0.001)   # half the realtime 0.002
    assert eng.counters["responses"].batched == 5


def test_a_new_engine_reattaches_to_a_pending_batch_and_never_submits_its_keys_again(tmp_path):
    api = FakeBatches(pending_polls=3)
    reqs = _reqs(6)
    first = _engine(tmp_path, api)
    try:
        assert first.presubmit(reqs, "responses") == 6      # submitted and journalled, nobody waits
    finally:
        first.close()                                        # "killed" while the batch is pending
    second = _engine(tmp_path, api)
    try:
        out = second.run_calls(reqs, "responses")
        # and again: every key is final now, nothing is sent or submitted
        again = second.run_calls(reqs, "responses")
    finally:
        second.close()
    assert len(api.batches) == 1 and max(api.submissions.values()) == 1
    assert all(r.outcome == Outcome.OK for r in out) and all(r.cached for r in again)


def test_unanswered_items_are_resubmitted_then_sent_at_realtime(tmp_path):
    expired = {r.key for r in _reqs(4)[:2]}
    # the first two keys expire in every batch: resubmitted once (max_resubmits=1), then sent at realtime
    api = FakeBatches(pending_polls=0, unfinished=lambda k, n: k in expired)
    eng = _engine(tmp_path, api, max_resubmits=1, on_unfinished="resubmit")
    try:
        out = eng.run_calls(_reqs(4), "responses")
    finally:
        eng.close()
    assert all(r.outcome == Outcome.OK for r in out)
    assert {k: n for k, n in api.submissions.items() if k in expired} == {k: 2 for k in expired}
    assert sorted(api.realtime) == sorted(expired)
    assert [r.text for r in out[:2]] == ["realtime", "realtime"]


def test_policy_realtime_sends_unanswered_items_at_once(tmp_path):
    reqs = _reqs(3)
    api = FakeBatches(pending_polls=0, unfinished=lambda k, n: k == reqs[0].key)
    eng = _engine(tmp_path, api, on_unfinished="realtime")
    try:
        out = eng.run_calls(reqs, "responses")
    finally:
        eng.close()
    assert api.submissions[reqs[0].key] == 1 and api.realtime == [reqs[0].key]
    assert out[0].text == "realtime" and out[0].outcome == Outcome.OK


def test_budget_gate_refuses_a_batch_it_cannot_cover(tmp_path):
    from specstress.errors import BudgetExceeded

    api = FakeBatches()
    eng = _engine(tmp_path, api, budget=0.0001)
    try:
        with pytest.raises(BudgetExceeded):
            eng.run_calls(_reqs(5), "responses")
    finally:
        eng.close()
    assert api.submissions == {}


def test_a_batch_the_provider_no_longer_knows_is_submitted_again(tmp_path):
    reqs = _reqs(3)
    api = FakeBatches(pending_polls=5)
    first = _engine(tmp_path, api)
    try:
        first.presubmit(reqs, "responses")
    finally:
        first.close()
    api.batches.clear()          # e.g. the emulator restarted: its batches are gone
    second = _engine(tmp_path, api, max_resubmits=1)
    try:
        out = second.run_calls(reqs, "responses")
    finally:
        second.close()
    assert all(r.outcome == Outcome.OK for r in out)
    assert set(api.submissions.values()) == {2}


def test_concurrent_shards_of_one_process_share_a_batch(tmp_path):
    api = FakeBatches(pending_polls=2)
    eng = _engine(tmp_path, api)
    reqs = _reqs(8)
    try:
        eng.presubmit(reqs, "responses")

        async def both():
            return await asyncio.gather(*(asyncio.to_thread(eng.run_calls, part, "responses")
                                          for part in (reqs[:4], reqs[4:])))

        outs = asyncio.run(both())
    finally:
        eng.close()
    assert len(api.batches) == 1 and max(api.submissions.values()) == 1
    assert all(r.outcome == Outcome.OK for part in outs for r in part)


def test_batch_section_errors_name_the_field_and_the_fix(tmp_path):
    from specstress.errors import SpecError
    from specstress.flows.planning import check_batch_section
    from specstress.runspec import load_run_spec
    from tests.conftest import DEMO

    spec = load_run_spec(DEMO, {"batch.mode": "batch", "batch.stages": ["respones"]})
    with pytest.raises(SpecError, match=r"batch.stages\[0\].*'respones'.*did you mean 'responses'"):
        check_batch_section(spec)
    with pytest.raises(SpecError, match="batch.models"):
        load_run_spec(DEMO, {"batch.models": ["nobody"]})
    with pytest.raises(SpecError, match="unknown role 'judge'"):
        load_run_spec(DEMO, {"batch.roles": ["judge"]})
    ok = load_run_spec(DEMO, {"batch.mode": "batch", "batch.roles": ["matcher"], "batch.stages": ["classifications"]})
    assert check_batch_section(ok) == []
    assert ok.batched(ok.roles.matcher, "classifications") and not ok.batched(ok.roles.matcher, "responses")
    assert not ok.batched(ok.roles.panel[0], "classifications") or ok.roles.panel[0] == ok.roles.matcher


def test_anthropic_cache_writes_are_charged_at_the_write_rate():
    from types import SimpleNamespace

    from specstress.providers.anthropic import _usage

    u = _usage(SimpleNamespace(input_tokens=100, cache_read_input_tokens=0, cache_creation_input_tokens=2000,
                               output_tokens=10, output_tokens_details=None))
    assert (u.input_tokens, u.cache_write_tokens, u.cached_input_tokens) == (2100, 2000, 0)
    price = ModelPrice(input=1.0, output=1.0, cache_write=1.25)
    assert price.cost(u, cache_write_tokens=u.cache_write_tokens) == pytest.approx((100 + 2000 * 1.25 + 10) / 1e6)
