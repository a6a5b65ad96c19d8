"""Before any money is spent: preflight checks and the cost plan.

``preflight`` fails fast on missing keys (naming the variable), unknown prices, unreadable inputs
and whatever the provider plugins check. ``plan`` estimates, per stage and model, the calls planned, the
calls already final in the ledger, the tokens and the dollars of the remaining work. Where a
stage's inputs already exist its calls are built for real and looked up in the ledger; otherwise
the counts come from the run spec and typical sizes (stated as estimates).

Every row is priced three ways: at the standard (realtime) rate, through the provider's batch API, and
in a batch with prompt caching (each call's system prompt is its cacheable prefix: the first call of each
distinct prefix writes it, ``prompt_cache.hit_ratio`` of the later calls read it; see ``specs/prices.yaml``).
The row's ``mode`` is what the run spec chose (``RunSpec.batched``), and ``cost_usd``, the figure the budget
check uses, is the batch price of a batched row and the realtime price of the others, without cache credit.
"""

from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass
from typing import Any

from specstress.context import RunContext
from specstress.domain import Usage
from specstress.errors import BudgetExceeded, MissingKeyError, SpecError
from specstress.prices import PriceTable
from specstress.providers import resolve_endpoint, services
from specstress.runspec import RunSpec
from specstress.secrets import key_variables
from specstress.tasks.base import Inputs
from specstress.tasks.registry import active_stages, artefact_ids, input_ids
from specstress.warehouse.ledger import Ledger
from specstress.warehouse.store import ArtefactLoader, Warehouse


@dataclass
class PlanRow:
    stage: str
    model_id: str
    calls: int
    in_ledger: int
    remaining: int
    input_tokens: int
    output_tokens: int
    #: the remaining work in the run spec's chosen mode (batch price when batched, else realtime; no cache credit)
    cost_usd: float
    exact: bool
    price_known: bool
    #: ``batch`` when the run spec sends these calls through the provider's batch API, else ``realtime``
    mode: str = "realtime"
    realtime_usd: float = 0.0
    batch_usd: float = 0.0
    #: batch price with the system prompts cached (``prompt_cache`` in the price table)
    batch_cache_usd: float = 0.0
    #: tokens of each call's system prompt (its cacheable prefix), and how many distinct ones remain
    prefix_tokens: int = 0
    prefixes: int = 0
    #: whether the prefix reaches the provider's minimum cacheable length
    cacheable: bool = False


def models_in_use(spec: RunSpec) -> list[str]:
    """Every model id the run's active stages call (each stage declares its own)."""
    return list(dict.fromkeys(m for st in active_stages(spec) for m in st.models_used(spec) if m))


def preflight(spec: RunSpec, emulator_url: str | None = "http://emulator.invalid", check_keys: bool = True) -> list[str]:
    """Raise on anything that would fail after money is spent; return warnings."""
    warnings: list[str] = []
    missing: dict[str, list[str]] = {}
    for mid in models_in_use(spec) if check_keys else []:
        try:
            resolve_endpoint(spec.model(mid), emulator_url)
        except MissingKeyError as exc:
            entry = spec.model(mid)
            names = " or ".join(key_variables(entry.provider, entry.key_env)) or str(exc)
            missing.setdefault(names, []).append(mid)
    if missing:
        lines = [f"set {var} (needed by {', '.join(mids)})" for var, mids in missing.items()]
        raise MissingKeyError("API keys are missing; nothing has been sent:\n  " + "\n  ".join(lines))
    prices = PriceTable.load(spec.resolve(spec.prices))
    for mid in models_in_use(spec):
        entry = spec.model(mid)
        if prices.for_entry(entry) is None:
            warnings.append(f"no price for model {mid!r} ({entry.price_as or entry.model}) in {spec.prices}: its cost "
                            "counts as $0. Fix: add it to the price table, or set price_as/price on the model.")
    warnings += services.preflight(spec)  # whatever the provider plugins check
    warnings += check_batch_section(spec)
    if spec.compliance.enabled and spec.compliance.model_spec and "://" not in spec.compliance.model_spec:
        from specstress.modelspec import load_model_spec

        try:
            ms = load_model_spec(spec.resolve(spec.compliance.model_spec))
        except (OSError, ValueError) as exc:
            raise SpecError(f"{spec.source_path}: field `compliance.model_spec`: {exc}") from None
        if not ms.sections:
            raise SpecError(f"{spec.compliance.model_spec}: no sections found in the model spec.")
    return warnings


def check_batch_section(spec: RunSpec) -> list[str]:
    """``batch.stages`` must name call stages; batched models without a batch API get a warning."""
    from specstress.runspec import BATCH_PROVIDERS
    from specstress.tasks.registry import all_stages

    warnings: list[str] = []
    b = spec.batch
    calls = sorted(s.name for s in all_stages() if s.kind == "calls")
    for i, name in enumerate(b.stages):
        if name not in calls:
            close = difflib.get_close_matches(name, calls, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"call stages: {', '.join(calls)}"
            raise SpecError(f"{spec.source_path}: field `batch.stages[{i}]`: {name!r} is not a stage that calls "
                            f"models. Fix: {hint}")
    if b.mode == "batch":
        for mid in b.models:
            entry = spec.model(mid)
            if entry.provider not in BATCH_PROVIDERS:
                warnings.append(f"batch.models lists {mid!r}, but {entry.provider} has no batch API: its calls are "
                                "sent at realtime prices.")
    return warnings


def _counts(ctx: RunContext, ids: dict[str, str]) -> dict[str, int]:

    spec = ctx.spec
    wh = Warehouse(ctx.warehouse_root)
    pairs = spec.pairs.count
    counts = {"pairs": pairs, "scenarios": pairs * (3 if spec.scenarios.biased else 1)}
    counts["kept_scenarios"] = counts["scenarios"]
    if "scenarios" in ids and wh.has_artefact(ids["scenarios"]):
        t = wh.read_artefact("scenarios", ids["scenarios"], ["status"])
        counts["scenarios"] = sum(1 for s in t.column("status").to_pylist() if s == "ok")
        counts["kept_scenarios"] = counts["scenarios"]
    if "diversity" in ids and wh.has_artefact(ids["diversity"]):
        t = wh.read_artefact("diversity", ids["diversity"], ["kept"])
        counts["kept_scenarios"] = sum(1 for k in t.column("kept").to_pylist() if k)
    counts["responses"] = counts["kept_scenarios"] * len(spec.roles.panel)
    return counts


def plan(ctx: RunContext) -> list[PlanRow]:
    """The cost plan of the remaining work (see the module docstring)."""

    spec = ctx.spec
    wh = Warehouse(ctx.warehouse_root)
    ledger = Ledger(wh)
    prices = PriceTable.load(spec.resolve(spec.prices))
    ids = artefact_ids(spec)
    counts = _counts(ctx, ids)
    rows: list[PlanRow] = []
    for stage in active_stages(spec):
        est = stage.estimate(spec, counts)
        if not est:
            continue
        done = wh.has_artefact(ids[stage.name])
        exact_hits: dict[str, tuple[int, int]] = {}
        # model -> (system-prompt tokens summed over the calls not in the ledger, their distinct system prompts)
        exact_prefix: dict[str, tuple[int, set[int]]] = {}
        if not done and stage.kind == "calls":
            inp = input_ids(stage, ids, spec)
            if all(wh.has_artefact(a) for a in inp.values()):
                items = stage.plan(ctx, Inputs(inp, ArtefactLoader(wh)))
                reqs = stage.first_requests(ctx, items)
                left = set(ledger.remaining(r.key for r in reqs))
                for r in reqs:
                    n, h = exact_hits.get(r.model_id, (0, 0))
                    exact_hits[r.model_id] = (n + 1, h + (0 if r.key in left else 1))
                    if r.key in left:
                        toks, distinct = exact_prefix.setdefault(r.model_id, (0, set()))
                        distinct.add(hash(r.system or ""))
                        exact_prefix[r.model_id] = (toks + len(r.system or "") // 4, distinct)
        for e in est:
            entry = spec.model(e.model_id) if e.model_id else None
            price = prices.for_entry(entry) if entry is not None else None
            if done:
                in_ledger, remaining = e.calls, 0
            elif e.model_id in exact_hits:
                n, h = exact_hits[e.model_id]
                share = h / n if n else 0.0
                in_ledger = round(e.calls * share)
                remaining = e.calls - in_ledger
            else:
                in_ledger, remaining = 0, e.calls
            frac = remaining / e.calls if e.calls else 0.0
            tin, tout = int(e.input_tokens * frac), int(e.output_tokens * frac)
            if e.model_id in exact_prefix and not done:
                toks, distinct = exact_prefix[e.model_id]
                pending = max(1, exact_hits[e.model_id][0] - exact_hits[e.model_id][1])
                prefix_tokens, prefixes = toks // pending, len(distinct)
            else:
                prefix_tokens, prefixes = e.prefix_tokens, math.ceil(e.prefixes * frac)
            prefix_tokens = min(prefix_tokens, tin // remaining) if remaining else 0
            mode = "batch" if entry is not None and spec.batched(e.model_id, stage.name) else "realtime"
            usage = Usage(input_tokens=tin, output_tokens=tout)
            realtime = price.cost(usage) if price else 0.0
            batch = price.cost(usage, batch=True) if price else 0.0
            batch_cache = price.cost_with_cache(remaining, tin, tout, prefix_tokens, prefixes,
                                                prices.cache_hit_ratio, batch=True) if price else 0.0
            rows.append(PlanRow(stage.name, e.model_id, e.calls, in_ledger, remaining, tin, tout,
                                batch if mode == "batch" else realtime,
                                exact=done or e.model_id in exact_hits, price_known=price is not None, mode=mode,
                                realtime_usd=realtime, batch_usd=batch, batch_cache_usd=batch_cache,
                                prefix_tokens=prefix_tokens, prefixes=prefixes,
                                cacheable=bool(price and price.cached_input is not None and prefix_tokens
                                               and prefix_tokens >= price.cache_min_tokens)))
    return rows


def remaining_cost(rows: list[PlanRow]) -> float:
    """Dollars of the remaining work in the run spec's chosen modes (no cache credit): what the budget check uses."""
    return sum(r.cost_usd for r in rows)


def totals(rows: list[PlanRow]) -> dict[str, float]:
    """The plan's totals: every row at realtime, batch and batch + cache prices, and in the chosen modes."""
    return {"realtime_usd": sum(r.realtime_usd for r in rows), "batch_usd": sum(r.batch_usd for r in rows),
            "batch_cache_usd": sum(r.batch_cache_usd for r in rows), "chosen_usd": remaining_cost(rows)}


def cache_assumptions(spec: RunSpec) -> dict[str, Any]:
    """What the batch and batch + cache columns assume (from the price table), for the footer and ``--json``."""
    prices = PriceTable.load(spec.resolve(spec.prices))
    return {"hit_ratio": prices.cache_hit_ratio, "batch_discount_by_provider": dict(prices.batch_by_provider),
            "cache_write_by_provider": dict(prices.cache_write_by_provider),
            "cache_min_tokens_by_provider": dict(prices.cache_min_by_provider),
            "prefix": "each call's system prompt; the first call of each distinct prefix writes it, hit_ratio of "
                      "the later calls read it at the cached-input price, the others write it again"}


def check_budget(ctx: RunContext, rows: list[PlanRow]) -> float:
    est = remaining_cost(rows)
    budget = ctx.spec.budget_usd
    if ctx.spent_before + est > budget:
        raise BudgetExceeded(
            f"the remaining work is estimated at ${est:.2f}" + (f" (plus ${ctx.spent_before:.2f} already spent)"
                                                                  if ctx.spent_before else "")
            + f", over budget_usd ${budget:.2f}. Nothing was sent. Fix: raise budget_usd, reduce pairs.count or the "
            "panel, or pick cheaper models. `specstress plan` shows the breakdown.")
    return est


def format_plan(rows: list[PlanRow], spec: RunSpec, spent_before: float = 0.0) -> str:
    head = f"{'stage':<18} {'model':<22} {'calls':>9} {'in ledger':>9} {'remaining':>9} {'in tok':>13} " \
           f"{'out tok':>13} {'prefix':>7} {'realtime $':>11} {'batch $':>10} {'batch+cache $':>13} {'mode':<8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        flag = " " if r.exact else "~"
        money = (f"{r.realtime_usd:>11.2f} {r.batch_usd:>10.2f} {r.batch_cache_usd:>13.2f}" if r.price_known
                 else f"{'no price':>11} {'no price':>10} {'no price':>13}")
        prefix = f"{r.prefix_tokens:,}{'' if r.cacheable or not r.prefix_tokens else '*'}" if r.prefix_tokens else "-"
        lines.append(f"{r.stage:<18} {r.model_id:<22} {r.calls:>9,} {r.in_ledger:>9,} {r.remaining:>9,} "
                     f"{r.input_tokens:>13,} {r.output_tokens:>13,} {prefix:>7} {money}{flag} {r.mode}")
    t = totals(rows)
    total = t["chosen_usd"]
    lines.append("-" * len(head))
    lines.append(f"{'total':<18} {'':<22} {sum(r.calls for r in rows):>9,} {sum(r.in_ledger for r in rows):>9,} "
                 f"{sum(r.remaining for r in rows):>9,} {sum(r.input_tokens for r in rows):>13,} "
                 f"{sum(r.output_tokens for r in rows):>13,} {'':>7} {t['realtime_usd']:>11.2f} {t['batch_usd']:>10.2f} "
                 f"{t['batch_cache_usd']:>13.2f}")
    rt = t["realtime_usd"]

    def share(x: float) -> str:
        return f" ({x / rt:.2f}x realtime)" if rt else ""

    batched = sum(1 for r in rows if r.mode == "batch")
    lines.append(f"totals: realtime ${rt:,.2f}; batch ${t['batch_usd']:,.2f}{share(t['batch_usd'])}; "
                 f"batch + cache ${t['batch_cache_usd']:,.2f}{share(t['batch_cache_usd'])}; "
                 f"chosen modes ${total:,.2f}{share(total)}")
    lines.append(f"run spec mode: batch.mode = {spec.batch.mode}; {batched} of {len(rows)} rows batched "
                 "(a row is batched when its provider has a batch API and `batch:` selects its model and stage)")
    lines.append(f"remaining estimate (chosen modes) ${total:,.2f}; already spent by this run name "
                 f"${spent_before:,.2f}; budget ${spec.budget_usd:,.2f}"
                 + ("  -> OVER BUDGET" if total + spent_before > spec.budget_usd else ""))
    a = cache_assumptions(spec)
    no_batch = sorted(p for p, d in a["batch_discount_by_provider"].items() if not d)
    lines.append("chosen = batch $ for batch rows and realtime $ for the others, with no cache credit (what the "
                 "budget check uses).")
    lines.append("batch + cache = batch prices, with each call's system prompt as its cacheable prefix ('prefix' = "
                 "its tokens): the first call of each distinct prefix writes")
    lines.append(f"  it (Anthropic: 1.25x input), {a['hit_ratio']:.0%} of the later calls read it at the cached-input "
                 "price (an assumption: prompt_cache.hit_ratio in the price table);")
    lines.append("  * = shorter than the provider's minimum cacheable prefix, never cached"
                 + (f"; {', '.join(no_batch)}: no batch API, standard rate in the batch columns" if no_batch else "")
                 + ".")
    lines.append("~ = estimated from the run spec (inputs not built yet); other rows use the real planned calls.")
    return "\n".join(lines)


def print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def spent_before(ctx: RunContext) -> float:
    """Dollars already spent by earlier invocations of this run name (from the ledger)."""

    wh = Warehouse(ctx.warehouse_root)
    ids = [r["run_id"] for r in wh.latest_runs() if r["name"] == ctx.spec.run_name]
    led = Ledger(wh)
    return sum(led.spent_by_run(rid) for rid in ids) if ids else 0.0


def as_dicts(rows: list[PlanRow]) -> list[dict[str, Any]]:
    return [r.__dict__ for r in rows]


def reusable_run(ctx: RunContext) -> dict[str, Any] | None:
    """The latest completed run of the same effective spec (so the same report settings) that built exactly
    this run's artefacts and whose report is still there, when every artefact of this run exists already: a
    rerun then has nothing to do (no Prefect, no services)."""
    import json

    wh = Warehouse(ctx.warehouse_root)
    ids = artefact_ids(ctx.spec)
    if not all(wh.has_artefact(a) for a in ids.values()):
        return None
    for r in wh.latest_runs():
        if (r["status"] != "completed" or not r.get("artefacts_json") or not r.get("report_path")
                or r.get("spec_hash") != ctx.spec.spec_hash()):
            continue
        try:
            done = json.loads(r["artefacts_json"])
        except ValueError:
            continue
        if done == ids and wh.exists("reports", r["run_id"], "report.html"):
            return r
    return None


def record_reuse(ctx: RunContext, prior: dict[str, Any]) -> dict[str, Any]:
    """Record a run that found every artefact built and reuses ``prior``'s report; returns its summary."""
    import json

    from specstress.warehouse.store import utcnow

    wh = Warehouse(ctx.warehouse_root)
    spec = ctx.spec
    now = utcnow()
    ids = artefact_ids(spec)
    wh.record_run({"run_id": ctx.run_id, "name": spec.run_name, "spec_path": ctx.spec_path,
                   "spec_hash": spec.spec_hash(), "started_at": now, "finished_at": now, "seq": 1,
                   "overrides_json": json.dumps(spec.effective_overrides(), default=str), "status": "completed",
                   "artefacts_json": json.dumps(ids), "calls_sent": 0, "cache_hits": 0, "spent_usd": 0.0,
                   "report_path": prior["report_path"],
                   "message": f"every artefact existed; nothing ran (the report of run {prior['run_id']} is current)"})
    return {"run_id": ctx.run_id, "name": spec.run_name, "status": "completed", "warehouse": ctx.warehouse_root,
            "report": prior["report_path"], "spent_usd": 0.0, "calls_sent": 0, "cache_hits": 0, "built": [],
            "reused_from": prior["run_id"],
            "stages": [{"stage": s, "status": "reused", "artefact_id": a} for s, a in ids.items()]}
