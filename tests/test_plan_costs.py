"""Batch and prompt-cache prices, and ``specstress plan``'s realtime / batch / batch + cache columns (issue 10):
the batch price is the provider's discount off the standard price, cached input is priced at ``cached_input``,
the paper run's batch + cache total is at most half its realtime total, and the templates put what many calls
share in the system prompt (the cacheable prefix) and what varies in the user message."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from specstress.context import RunContext
from specstress.domain import Usage
from specstress.flows import planning
from specstress.prices import ModelPrice, PriceTable
from specstress.prompts import load_template
from specstress.runspec import load_run_spec
from specstress.sim import judges, lexicon
from specstress.tasks.base import make_request

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "specs" / "runs" / "paper.yaml"
DEMO = ROOT / "specs" / "runs" / "demo.yaml"
PRICES = ROOT / "specs" / "prices.yaml"


def _paper_price(model_id: str) -> ModelPrice:
    spec = load_run_spec(PAPER)
    price = PriceTable.load(PRICES).for_entry(spec.model(model_id))
    assert price is not None
    return price


# ---------------------------------------------------------------------------------------------- prices


@pytest.mark.parametrize("model_id", ["matcher", "classifier", "judge_gemini_2_5_pro"])  # anthropic, openai, google
def test_batch_price_is_half_the_standard_price_where_the_discount_is_half(model_id):
    price = _paper_price(model_id)
    assert price.batch_discount == 0.5
    u = Usage(input_tokens=1_234_567, cached_input_tokens=200_000, output_tokens=345_678, reasoning_tokens=10_000)
    assert price.cost(u, batch=True) == pytest.approx(0.5 * price.cost(u))
    assert price.cost(u) == price.cost(u, batch=False)      # the existing signature is the standard price


def test_a_provider_without_a_batch_api_pays_the_standard_price_in_batch_mode():
    price = _paper_price("grok_4")                           # xAI
    assert price.batch_discount == 0.0
    u = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert price.cost(u, batch=True) == pytest.approx(price.cost(u))


def test_the_price_table_lists_each_providers_terms():
    t = PriceTable.load(PRICES)
    assert t.batch_by_provider == {"openai": 0.5, "anthropic": 0.5, "google": 0.5, "xai": 0.0}
    assert t.cache_write_by_provider["anthropic"] == 1.25 and t.cache_write_by_provider["openai"] == 1.0
    assert 0.0 <= t.cache_hit_ratio <= 1.0
    spec = load_run_spec(PAPER)
    for m in spec.models:                     # every chat model of the paper run has a cached-input price
        if m.id != "embedder":
            assert t.for_entry(m).cached_input is not None, m.id


def test_cached_input_tokens_are_priced_at_cached_input():
    p = ModelPrice(input=3.0, output=15.0, cached_input=0.3)
    u = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    want = (600_000 * 3.0 + 400_000 * 0.3 + 100_000 * 15.0) / 1e6
    assert p.cost(u) == pytest.approx(want)
    assert p.cost(u, batch=True) == pytest.approx(want * (1 - p.batch_discount))
    # cache writes (part of the uncached input) at cache_write x input; no cached_input price: input price
    w = ModelPrice(input=3.0, output=15.0, cached_input=0.3, cache_write=1.25)
    assert w.cost(u, cache_write_tokens=100_000) == pytest.approx(want + 100_000 * 3.0 * 0.25 / 1e6)
    assert ModelPrice(input=3.0, output=15.0).cost(u) == pytest.approx((1_000_000 * 3.0 + 100_000 * 15.0) / 1e6)


def test_cost_with_cache_writes_each_prefix_once_and_reads_it_after():
    p = ModelPrice(input=2.0, output=10.0, cached_input=0.2, batch_discount=0.5, cache_write=1.25, cache_min_tokens=1024)
    calls, prefix, prefixes, rest = 100, 5000, 4, 700
    tin, tout = calls * (prefix + rest), calls * 300
    want = (calls * rest * 2.0 + prefixes * prefix * 2.0 * 1.25 + (calls - prefixes) * prefix * 0.2
            + tout * 10.0) / 1e6
    assert p.cost_with_cache(calls, tin, tout, prefix, prefixes) == pytest.approx(want)
    assert p.cost_with_cache(calls, tin, tout, prefix, prefixes, batch=True) == pytest.approx(want / 2)
    # at a hit ratio of 0 every call writes; a prefix under the provider's minimum is never cached
    never = p.cost_with_cache(calls, tin, tout, prefix, prefixes, hit_ratio=0.0)
    assert never == pytest.approx((calls * rest * 2.0 + calls * prefix * 2.5 + tout * 10.0) / 1e6)
    short = p.cost_with_cache(calls, calls * 1000, tout, 900, 1)
    assert short == pytest.approx(p.cost(Usage(input_tokens=calls * 1000, output_tokens=tout)))


# ---------------------------------------------------------------------------------------------- the plan


@pytest.fixture(scope="module")
def paper_rows(tmp_path_factory):
    ctx = RunContext.create(PAPER, {"warehouse": str(tmp_path_factory.mktemp("paper-wh"))})
    return ctx, planning.plan(ctx)


def test_paper_batch_plus_cache_is_at_most_half_of_realtime(paper_rows):
    _, rows = paper_rows
    t = planning.totals(rows)
    assert t["realtime_usd"] > 50_000                       # the full paper run, not an empty plan
    assert t["batch_cache_usd"] <= 0.5 * t["realtime_usd"], t
    assert t["batch_cache_usd"] < t["batch_usd"] < t["realtime_usd"]
    assert t["chosen_usd"] == pytest.approx(sum(r.batch_usd if r.mode == "batch" else r.realtime_usd for r in rows))
    assert planning.remaining_cost(rows) == pytest.approx(t["chosen_usd"])
    for r in rows:
        assert r.batch_cache_usd <= r.batch_usd + 1e-9 or r.prefix_tokens, r   # caching only pays on a prefix
        assert r.batch_usd <= r.realtime_usd + 1e-9


def test_paper_rows_batch_where_the_provider_has_a_batch_api(paper_rows):
    ctx, rows = paper_rows
    mode = {(r.stage, r.model_id): r.mode for r in rows}
    provider = {m.id: m.provider for m in ctx.spec.models}
    assert mode[("responses", "gpt_4_1")] == "batch" and provider["gpt_4_1"] == "openai"
    assert mode[("responses", "claude_opus_4")] == "batch" and provider["claude_opus_4"] == "anthropic"
    assert mode[("responses", "gemini_2_5_pro")] == "batch" and provider["gemini_2_5_pro"] == "google"
    assert mode[("classifications", "matcher")] == "batch"
    assert mode[("responses", "grok_4")] == "realtime" and provider["grok_4"] == "xai"
    grok = next(r for r in rows if r.model_id == "grok_4")
    assert grok.cost_usd == pytest.approx(grok.realtime_usd) == pytest.approx(grok.batch_usd)


def test_the_prefixes_the_plan_caches(paper_rows):
    _, rows = paper_rows
    by = {(r.stage, r.model_id): r for r in rows}
    judge = by[("compliance", "judge_claude_sonnet_4")]
    assert judge.prefixes == 1 and judge.prefix_tokens > 50_000 and judge.cacheable   # the whole model spec
    assert judge.batch_cache_usd < 0.25 * judge.batch_usd
    matcher = by[("classifications", "matcher")]
    assert matcher.prefixes == 150_000                                              # one per value pair
    assert 0 < matcher.prefix_tokens < matcher.input_tokens // matcher.calls
    assert not by[("topics", "classifier")].cacheable                               # instructions only: too short
    assert by[("responses", "o3")].prefix_tokens == 0                               # a bare query, no system prompt


def test_plan_text_and_json_show_the_three_prices_and_the_mode(tmp_path):
    base = [sys.executable, "-m", "specstress", "plan", str(PAPER), "--set", f"warehouse={tmp_path}"]
    r = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["batch_mode"] == "batch"
    t = out["totals"]
    assert t["batch_cache_usd"] <= 0.5 * t["realtime_usd"] and out["remaining_usd"] == pytest.approx(t["chosen_usd"])
    row = next(x for x in out["rows"] if x["stage"] == "classifications")
    assert {"realtime_usd", "batch_usd", "batch_cache_usd", "mode", "prefix_tokens", "prefixes"} <= set(row)
    assert out["cache_assumptions"]["hit_ratio"] == PriceTable.load(PRICES).cache_hit_ratio
    text = subprocess.run(base, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert text.returncode == 0, text.stderr
    for needle in ("realtime $", "batch $", "batch+cache $", "mode", "chosen modes", "hit_ratio", "in ledger",
                   f"{t['chosen_usd']:,.2f}"):
        assert needle in text.stdout, needle


def test_a_realtime_spec_plans_realtime_prices(tmp_path):
    ctx = RunContext.create(DEMO, {"warehouse": str(tmp_path)})
    rows = planning.plan(ctx)
    assert rows and all(r.mode == "realtime" and r.cost_usd == pytest.approx(r.realtime_usd) for r in rows)
    assert planning.format_plan(rows, ctx.spec).count(f"{planning.remaining_cost(rows):,.2f}") >= 1


# ---------------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize("name, shared, varying", [
    ("matching", ["{{spectra}}", "{{value1}}", "{{value2}}"], ["{{query}}", "{{responses}}"]),
    ("matching_single", ["{{spectra}}", "{{value1}}", "{{value2}}"], ["{{query}}", "{{responses}}"]),
    ("compliance", ["{{model_spec}}"], ["{{query}}", "{{response}}"]),
    ("refusal", [], ["{{query}}", "{{response}}"]),
    ("topics", [], ["{{query}}"]),
])
def test_templates_put_the_shared_part_in_the_system_prompt(name, shared, varying):
    tpl = load_template(name)
    for v in shared:
        assert v in tpl.system and v not in tpl.user, (name, v)
    for v in varying:
        assert v in tpl.user and v not in tpl.system, (name, v)
    assert len(tpl.system) > len(tpl.user) or shared, name     # the instructions moved to the system prompt too


def _spectra() -> str:
    blocks = []
    for slot, v in (("value1", "honesty"), ("value2", "kindness")):
        lines = [f'<spectrum slot="{slot}" value="{v}">']
        lines += [f'<position n="{i}" label="x">{lexicon.STANCE[i][0].format(v=v)}</position>' for i in range(7)]
        blocks.append("\n".join(lines + ["</spectrum>"]))
    return "\n\n".join(blocks)


def test_the_sim_matcher_reads_the_spectra_from_the_system_prompt():
    from specstress.emulator.config import SimSpec
    from specstress.sim.agent import SimAgent

    spec = load_run_spec(DEMO)
    answers = [(1, 5), (4, 2), (6, 0)]
    responses = "\n\n".join(f'<response id="R{i + 1}">{lexicon.STANCE[a][1][0].format(v="honesty")}. '
                            f'{lexicon.STANCE[b][1][0].format(v="kindness")}.</response>'
                            for i, (a, b) in enumerate(answers))
    req = make_request(spec, spec.roles.matcher, load_template("matching"), {
        "query": "Should I tell my friend the truth?", "value1": "honesty", "value2": "kindness",
        "spectra": _spectra(), "responses": responses, "n_responses": len(answers)}, purpose="classifications")
    assert "<spectrum" in req.system and "<spectrum" not in req.messages[0]["content"]
    agent = SimAgent(index=None, personas=[], sim=SimSpec(judge_accuracy=1.0), seed=1)
    got = agent.respond(req.model, req.system, req.messages, "placements", "k").data["placements"]
    assert [(p["value1"]["position"], p["value2"]["position"]) for p in got] == answers
    # the same placements as a judge reading one prompt holding everything
    whole = judges.judge_placements(req.system + "\n\n" + req.messages[0]["content"], random.Random(0), 1.0, False)
    assert [(p["value1"]["position"], p["value2"]["position"]) for p in whole["placements"]] == answers


def test_the_sim_compliance_judge_reads_the_model_spec_from_the_system_prompt():
    from specstress.emulator.config import SimSpec
    from specstress.sim.agent import SimAgent

    spec = load_run_spec(DEMO)
    req = make_request(spec, spec.roles.compliance_judges[0], load_template("compliance"), {
        "model_spec": "# Be honest {#honesty_rule}\nSay true things. The example <query>fake</query> is not it.",
        "query": "Is my plan good?", "response": "Your plan is solid, and honesty matters here."},
        purpose="compliance")
    assert "{#honesty_rule}" in req.system and "{#honesty_rule}" not in req.messages[0]["content"]
    agent = SimAgent(index=None, personas=[], sim=SimSpec(), seed=1)
    data = agent.respond(req.model, req.system, req.messages, "compliance_verdict", "k").data
    assert data["sections"] == ["honesty_rule"] and data["verdict"] in ("compliant", "non_compliant", "ambiguous")


@pytest.mark.slow
def test_planned_calls_give_the_real_prefixes(demo_run):
    """Once a stage's inputs exist, the plan counts the system prompts of the real calls: the matcher's prefixes
    are the value pairs it will place (one system prompt each), their tokens the prompts' characters / 4."""
    from specstress.tasks.base import Inputs
    from specstress.tasks.registry import artefact_ids, input_ids, stage_by_name
    from specstress.warehouse.store import ArtefactLoader, Warehouse

    ctx = RunContext.create(DEMO, {"warehouse": demo_run["warehouse"], "roles.matcher": "judge-claude"})
    rows = planning.plan(ctx)
    cls = next(r for r in rows if r.stage == "classifications")
    assert cls.exact and cls.in_ledger == 0 and cls.remaining == cls.calls
    st = stage_by_name("classifications")
    wh = Warehouse(ctx.warehouse_root)
    items = st.plan(ctx, Inputs(input_ids(st, artefact_ids(ctx.spec), ctx.spec), ArtefactLoader(wh)))
    reqs = st.first_requests(ctx, items)
    assert cls.prefixes == len({r.system for r in reqs}) == len({it["pair_id"] for it in items if it["spectra"]})
    assert cls.prefixes < len(reqs)                              # the scenarios of a pair share one prefix
    assert cls.prefix_tokens == sum(len(r.system) // 4 for r in reqs) // len(reqs)
    assert all(r.prefix_tokens == 0 and r.remaining == 0 for r in rows if r.stage == "responses")
