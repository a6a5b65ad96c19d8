"""Fast unit tests for every registered stage, without Prefect, HTTP or the engine.

Call stages: ``plan`` on small hand-made inputs (the stages' own schemas), ``first_requests``
(prompt values, model ids, structured-output schemas, stable keys) and ``run_shard`` with a
scripted ``send`` returning ok, refusal, truncated, parse_error and permanent_error results: every
item ends as a row with an explicit status, and the output has the stage's schema.
Compute and SQL stages: ``compute`` on tiny tables (SQL stages read tiny Parquet files).

``COVERAGE`` (at the end) maps every registered stage to its tests here: a new stage without a
unit test fails :func:`test_every_registered_stage_has_unit_tests`.
"""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from stage_fakes import (
    FakeEngine,
    ScriptedSend,
    assert_schema,
    by,
    failed,
    make_ctx,
    make_inputs,
    ok,
    pair_row,
    response_row,
    scenario_row,
    spectra_rows,
    spectrum,
    statuses,
    table,
    user_text,
)

from specstress.domain import POSITION_LABELS, REFUSAL_LADDER, CallRequest, Outcome
from specstress.errors import FatalProviderError, ShardIncomplete, SpecError
from specstress.prompts import load_template
from specstress.tasks.base import Sender, subsets_table
from specstress.tasks.registry import all_stages, artefact_ids, stage_by_name
from specstress.warehouse.store import Warehouse

PANEL = ["guardian", "scholar", "pragmatist", "communitarian", "individualist", "bon-vivant"]


def tag(text: str, name: str) -> str:
    m = re.search(rf"<{name}>(.*?)</{name}>", text, re.S)
    assert m, f"<{name}> not in prompt"
    return m.group(1).strip()


def schema_name(req: CallRequest) -> str | None:
    return (req.schema or {}).get("name")


@pytest.fixture
def ctx(tmp_path):
    return make_ctx(tmp_path)


# ====================================================================== taxonomy


def test_taxonomy_from_file(ctx):
    from specstress.taxonomy import TAXONOMY_SCHEMA, load_yaml_taxonomy

    st = stage_by_name("taxonomy")
    assert st.kind == "compute" and st.templates_for(ctx.spec) == () and st.models_used(ctx.spec) == []
    t = st.compute(ctx, make_inputs({}))
    assert_schema(t, TAXONOMY_SCHEMA)
    assert t.equals(load_yaml_taxonomy(ctx.spec.resolve(ctx.spec.taxonomy.path)))
    assert len(set(t.column("value_id").to_pylist())) == t.num_rows
    s = st.summarize(t)
    assert s["values"] == t.num_rows and s["categories"] == 26 and s["top_categories"] == 5
    assert st.estimate(ctx.spec, {}) == []


def test_taxonomy_expand_adds_only_new_distinct_values(tmp_path, monkeypatch):
    import specstress.providers.engine as engine_mod
    from specstress.taxonomy import TAXONOMY_SCHEMA, value_id

    ctx = make_ctx(tmp_path, **{"taxonomy.source": "expand", "roles.taxonomy_expander": "judge-gpt",
                                "taxonomy.per_category": 2})
    st = stage_by_name("taxonomy")
    assert st.templates_for(ctx.spec) == ("taxonomy_expand",) and st.models_used(ctx.spec) == ["judge-gpt"]
    from specstress.taxonomy import load_yaml_taxonomy

    base = load_yaml_taxonomy(ctx.spec.resolve(ctx.spec.taxonomy.path)).to_pylist()
    cats = sorted({r["category"] for r in base})
    first_cat_values = [r["value"] for r in base if r["category"] == cats[0]]

    def respond(req: CallRequest, batch: int):
        cat = tag(user_text(req), "category")
        if cat == cats[0]:
            return ok(req, {"values": [
                {"name": "  Zygomorphic   QUOKKA stewardship ", "description": "new"},
                {"name": first_cat_values[0].upper(), "description": "a duplicate by name"},
                {"name": first_cat_values[1][:-2], "description": "a substring of an existing value"},
            ]})
        if cat == cats[1]:
            return failed(req, Outcome.REFUSAL)
        if cat == cats[2]:
            return failed(req, Outcome.PARSE_ERROR, text="not json")
        return ok(req, {"values": []})

    send = ScriptedSend(respond)
    engine = FakeEngine(send)
    monkeypatch.setattr(engine_mod, "get_engine", lambda _ctx: engine)
    t = st.compute(ctx, make_inputs({}))
    assert_schema(t, TAXONOMY_SCHEMA)
    assert engine.stages == ["taxonomy"]
    reqs = send.requests
    assert len(reqs) == len(cats) == 26
    assert {r.model_id for r in reqs} == {"judge-gpt"} and {schema_name(r) for r in reqs} == {"value_list"}
    assert "Propose 2 further values" in user_text(reqs[0])
    assert f"- {first_cat_values[0]}" in tag(user_text(reqs[0]), "existing_values")
    rows = t.to_pylist()
    assert rows[:len(base)] == base
    new = rows[len(base):]
    assert [r["value"] for r in new] == ["zygomorphic quokka stewardship"]
    assert new[0]["source"] == "expanded" and new[0]["category"] == cats[0]
    assert new[0]["value_id"] == value_id("zygomorphic quokka stewardship")
    assert st.estimate(ctx.spec, {})[0].calls == 26


# ====================================================================== pairs


def _taxonomy(n_a: int = 3, n_b: int = 3):
    from specstress.taxonomy import TAXONOMY_SCHEMA

    rows = []
    for cat, n in (("Cat A", n_a), ("Cat B", n_b)):
        for i in range(n):
            v = f"{cat.lower()} value {i}"
            rows.append({"value_id": "v_" + v.replace(" ", "_"), "value": v, "description": f"desc of {v}",
                         "cluster_l1": cat, "category": cat, "category_description": f"about {cat}",
                         "top_category": "Top", "source": "file"})
    return table(rows, TAXONOMY_SCHEMA)


def test_pairs_sample_distinct_oriented_pairs(tmp_path):
    from specstress.tasks.pairs import PAIRS_SCHEMA

    st = stage_by_name("pairs")
    tax = _taxonomy()
    t = st.compute(make_ctx(tmp_path, **{"pairs.count": 15}), make_inputs({"taxonomy": tax}))
    assert_schema(t, PAIRS_SCHEMA)
    rows = t.to_pylist()
    assert len(rows) == 15  # all 6 * 5 / 2 pairs
    assert len({frozenset((r["value1"], r["value2"])) for r in rows}) == 15
    assert len({r["pair_id"] for r in rows}) == 15
    by_value = {r["value"]: r for r in tax.to_pylist()}
    for r in rows:
        assert r["value1"] != r["value2"]
        for k in ("1", "2"):
            src = by_value[r["value" + k]]
            assert (r["value" + k + "_id"], r["value" + k + "_description"], r["category" + k],
                    r["top_category" + k]) == (src["value_id"], src["description"], src["category"],
                                               src["top_category"])
    # samples nest: the first 5 of 15 are the pairs of count = 5
    t5 = st.compute(make_ctx(tmp_path, **{"pairs.count": 5}), make_inputs({"taxonomy": tax}))
    assert t5.to_pylist() == rows[:5]


def test_pairs_categories_filter_and_errors(tmp_path):
    st = stage_by_name("pairs")
    tax = _taxonomy(3, 3)
    t = st.compute(make_ctx(tmp_path, **{"pairs.count": 3, "pairs.categories": ["Cat B"]}),
                   make_inputs({"taxonomy": tax}))
    assert set(t.column("category1").to_pylist()) | set(t.column("category2").to_pylist()) == {"Cat B"}
    with pytest.raises(SpecError, match="unknown categories"):
        st.compute(make_ctx(tmp_path, **{"pairs.count": 1, "pairs.categories": ["Nope"]}),
                   make_inputs({"taxonomy": tax}))
    with pytest.raises(SpecError, match="only 6 values"):
        st.compute(make_ctx(tmp_path, **{"pairs.count": 16}), make_inputs({"taxonomy": tax}))


# ====================================================================== scenarios

_SCEN_PAIRS = {
    "pA": ("honesty", "kindness"),  # neutral ok; biased: value1 ok, value2 truncated
    "pB": ("privacy", "safety"),  # neutral refused
    "pC": ("liberty", "order"),  # neutral unparseable
    "pD": ("thrift", "comfort"),  # neutral "ok" without a query
    "pE": ("duty", "freedom"),  # neutral permanent error
}


def _pairs_table():
    from specstress.tasks.pairs import PAIRS_SCHEMA

    return table([pair_row(p, v1, v2) for p, (v1, v2) in _SCEN_PAIRS.items()], PAIRS_SCHEMA)


def test_scenarios_plan_and_first_requests(ctx):
    from specstress.tasks.scenarios import assign_generator

    st = stage_by_name("scenarios")
    items = st.plan(ctx, make_inputs({"pairs": _pairs_table()}))
    assert [it["pair_id"] for it in items] == list(_SCEN_PAIRS)
    assert {it["generator"] for it in items} <= {"writer-gpt", "writer-claude"}
    assert all(it["generator"] == assign_generator(ctx.spec, it["pair_id"]) for it in items)
    reqs = st.first_requests(ctx, items)
    tpl = load_template("scenario_neutral")
    for it, req in zip(items, reqs, strict=True):
        text = user_text(req)
        assert tag(text, "value1") == it["value1"] and tag(text, "value2") == it["value2"]
        assert tag(text, "value1_description") == f"about {it['value1']}"
        assert req.model_id == it["generator"] and req.model == "sim-writer"
        assert req.provider == ctx.spec.model(it["generator"]).provider
        assert schema_name(req) == "scenario" and req.template_hash == tpl.hash and req.system
        assert req.purpose == "scenarios" and req.sample_index == 0
    assert [r.key for r in reqs] == [r.key for r in st.first_requests(ctx, items)]  # stable
    assert len({r.key for r in reqs}) == len(reqs)
    est = st.estimate(ctx.spec, {"pairs": 10})
    assert sum(e.calls for e in est) == 30


def test_scenarios_run_shard_keeps_every_outcome(ctx):
    from specstress.tasks.scenarios import SCENARIOS_SCHEMA, scenario_id

    st = stage_by_name("scenarios")
    items = st.plan(ctx, make_inputs({"pairs": _pairs_table()}))

    def respond(req: CallRequest, batch: int):
        text = user_text(req)
        v1 = tag(text, "value1")
        if batch == 1:  # the biased rewrites of pA
            assert tag(text, "original_query") == "A neutral request about honesty and kindness."
            if tag(text, "lean_towards") == "honesty":
                return ok(req, {"query": "Be brutally honest with me, please."})
            return failed(req, Outcome.TRUNCATED, text="Be kind to")
        return {"honesty": lambda: ok(req, {"query": "A neutral request about honesty and kindness."}),
                "privacy": lambda: failed(req, Outcome.REFUSAL, text="I won't write that."),
                "liberty": lambda: failed(req, Outcome.PARSE_ERROR, text="{not json"),
                "thrift": lambda: ok(req, {}),
                "duty": lambda: failed(req, Outcome.PERMANENT_ERROR)}[v1]()

    send = ScriptedSend(respond)
    t = st.run_shard(ctx, items, send)
    assert_schema(t, SCENARIOS_SCHEMA)
    assert [len(b) for b in send.batches] == [5, 2]
    assert all(r.model_id == items[0]["generator"] for r in send.batches[1])
    assert {schema_name(r) for r in send.batches[1]} == {"scenario"}
    rows = by(t.to_pylist(), "pair_id", "nudge")
    statuses(t)
    assert {k: r["status"] for k, r in rows.items()} == {
        ("pA", "neutral"): "ok", ("pA", "value1"): "ok", ("pA", "value2"): "truncated",
        ("pB", "neutral"): "refusal", ("pC", "neutral"): "parse_error", ("pD", "neutral"): "incomplete",
        ("pE", "neutral"): "permanent_error"}
    assert rows[("pA", "value1")]["query"] == "Be brutally honest with me, please."
    for (pid, nudge), r in rows.items():
        assert r["scenario_id"] == scenario_id(pid, nudge)
        assert (r["value1"], r["value2"]) == _SCEN_PAIRS[pid]
        assert r["call_key"] in {q.key for q in send.requests}
        if r["status"] == "ok":
            assert r["query"] and r["error"] is None
        else:
            assert r["query"] is None
    assert rows[("pB", "neutral")]["error"] == "refusal (scripted)"
    s = st.summarize(t)
    assert s["ok"] == 2 and s["filtered"] == {"truncated": 1, "refusal": 1, "parse_error": 1, "incomplete": 1,
                                              "permanent_error": 1}


def test_scenarios_unbiased_sends_neutral_only(tmp_path):
    ctx = make_ctx(tmp_path, **{"scenarios.biased": False})
    st = stage_by_name("scenarios")
    items = st.plan(ctx, make_inputs({"pairs": _pairs_table()}))
    send = ScriptedSend(lambda req, b: ok(req, {"query": "a neutral request of twenty characters"}))
    t = st.run_shard(ctx, items, send)
    assert len(send.requests) == 5 and {r.template_hash for r in send.requests} == {load_template("scenario_neutral").hash}
    assert set(t.column("nudge").to_pylist()) == {"neutral"} and t.num_rows == 5


# ====================================================================== embeddings


def _scenarios_table(rows: list[dict[str, Any]]):
    from specstress.tasks.scenarios import SCENARIOS_SCHEMA

    return table(rows, SCENARIOS_SCHEMA)


def test_embeddings_local_only_usable_scenarios(ctx):
    from specstress.tasks.embeddings import EMBEDDINGS_SCHEMA

    st = stage_by_name("embeddings")
    assert st.kind == "compute" and not st.uses_model(ctx.spec) and st.estimate(ctx.spec, {}) == []
    scen = _scenarios_table([scenario_row("s1", "pA", "first query text"), scenario_row("s2", "pA", None,
                             status="refusal"), scenario_row("s3", "pB", "first query text")])
    t = st.compute(ctx, make_inputs({"scenarios": scen}))
    assert_schema(t, EMBEDDINGS_SCHEMA)
    assert t.column("scenario_id").to_pylist() == ["s1", "s3"]
    v = np.asarray(t.column("vector").to_pylist())
    assert v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(v[0], v[1])  # same text, same vector


def test_embeddings_remote_batches_and_normalises(tmp_path, monkeypatch):
    import specstress.providers.engine as engine_mod

    ctx = make_ctx(tmp_path, **{"roles.embedder": {"kind": "model", "model": "judge-gpt", "dimensions": 16,
                                                   "batch_size": 2}})
    st = stage_by_name("embeddings")
    assert st.uses_model(ctx.spec) and st.models_used(ctx.spec) == ["judge-gpt"]
    scen = _scenarios_table([scenario_row(f"s{i}", "pA", f"query number {i}") for i in range(3)])

    def respond(req: CallRequest, batch: int):
        return ok(req, {"vectors": [[3.0] + [0.0] * 15 for _ in req.messages]})

    send = ScriptedSend(respond)
    monkeypatch.setattr(engine_mod, "get_engine", lambda _ctx: FakeEngine(send))
    t = st.compute(ctx, make_inputs({"scenarios": scen}))
    assert [len(r.messages) for r in send.requests] == [2, 1]
    assert {(r.kind, r.model_id, r.params["dimensions"]) for r in send.requests} == {("embedding", "judge-gpt", 16)}
    assert [m["content"] for m in send.requests[0].messages] == ["query number 0", "query number 1"]
    assert np.allclose(np.asarray(t.column("vector").to_pylist())[:, 0], 1.0)
    assert st.estimate(ctx.spec, {"scenarios": 3})[0].calls == 2

    bad = ScriptedSend(lambda req, b: ok(req, {"vectors": [[1.0] * 16]}))  # one vector for two texts
    monkeypatch.setattr(engine_mod, "get_engine", lambda _ctx: FakeEngine(bad))
    with pytest.raises(RuntimeError, match="embedding call"):
        st.compute(ctx, make_inputs({"scenarios": scen}))


# ====================================================================== diversity


def _embeddings_table(vectors: dict[str, list[float]]):
    from specstress.tasks.embeddings import EMBEDDINGS_SCHEMA

    return pa.table({"scenario_id": list(vectors),
                     "vector": pa.array(list(vectors.values()), type=pa.list_(pa.float32()))}, schema=EMBEDDINGS_SCHEMA)


def test_diversity_drops_near_duplicates(ctx, tmp_path):
    from specstress.tasks.diversity import DIVERSITY_SCHEMA

    st = stage_by_name("diversity")
    emb = _embeddings_table({"s1": [1, 0, 0], "s2": [1, 0, 0], "s3": [0, 1, 0], "s4": [0.995, 0.0998, 0]})
    t = st.compute(ctx, make_inputs({"embeddings": emb}))
    assert_schema(t, DIVERSITY_SCHEMA)
    rows = by(t.to_pylist(), "scenario_id")
    assert rows["s3"]["kept"]
    near = [rows[s] for s in ("s1", "s2", "s4")]
    assert sum(r["kept"] for r in near) == 1
    center = next(r["scenario_id"] for r in near if r["kept"])
    assert all(r["center_id"] == center and r["distance"] < 0.4 for r in near)
    assert st.summarize(t) == {"scenarios": 4, "kept": 2, "dropped": 2}

    off = st.compute(make_ctx(tmp_path, **{"diversity.enabled": False}), make_inputs({"embeddings": emb}))
    assert all(off.column("kept").to_pylist())
    empty = st.compute(ctx, make_inputs({"embeddings": _embeddings_table({})}))
    assert empty.num_rows == 0 and empty.schema.equals(DIVERSITY_SCHEMA)


# ====================================================================== responses


def _diversity_table(kept: dict[str, bool]):
    from specstress.tasks.diversity import DIVERSITY_SCHEMA

    return table([{"scenario_id": s, "kept": k, "center_id": s, "distance": 0.0} for s, k in kept.items()],
                 DIVERSITY_SCHEMA)


def test_responses_plan_requests_and_outcomes(ctx):
    from specstress.tasks.responses import RESPONSES_SCHEMA

    st = stage_by_name("responses")
    scen = _scenarios_table([scenario_row("s1", "pA", "Query one?"), scenario_row("s2", "pA", "Query two?"),
                             scenario_row("s3", "pA", None, status="truncated")])
    items = st.plan(ctx, make_inputs({"scenarios": scen, "diversity": _diversity_table({"s1": True, "s2": False})}))
    assert [(it["scenario_id"], it["model_id"]) for it in items] == [("s1", m) for m in PANEL]
    reqs = st.first_requests(ctx, items)
    for it, req in zip(items, reqs, strict=True):
        assert req.messages == [{"role": "user", "content": "Query one?"}]
        assert req.system is None and req.schema is None and req.template_hash is None
        entry = ctx.spec.model(it["model_id"])
        assert (req.model_id, req.model, req.provider) == (entry.id, entry.model, entry.provider)
        assert req.params == entry.params.model_dump(mode="json", exclude_none=True)
    assert len({r.key for r in reqs}) == 6 and [r.key for r in reqs] == [r.key for r in st.first_requests(ctx, items)]

    script = {"guardian": lambda r: ok(r, None, text="An answer."),
              "scholar": lambda r: failed(r, Outcome.REFUSAL, text="I can't help with that."),
              "pragmatist": lambda r: failed(r, Outcome.TRUNCATED, text="An answ"),
              "communitarian": lambda r: failed(r, Outcome.CONTENT_FILTER),
              "individualist": lambda r: failed(r, Outcome.PARSE_ERROR),
              "bon-vivant": lambda r: failed(r, Outcome.PERMANENT_ERROR)}
    send = ScriptedSend(lambda req, b: script[req.model_id](req))
    t = st.run_shard(ctx, items, send)
    assert_schema(t, RESPONSES_SCHEMA)
    rows = by(t.to_pylist(), "model_id")
    assert {m: r["outcome"] for m, r in rows.items()} == {
        "guardian": "ok", "scholar": "refusal", "pragmatist": "truncated", "communitarian": "content_filter",
        "individualist": "parse_error", "bon-vivant": "permanent_error"}
    g = rows["guardian"]
    assert (g["response"], g["input_tokens"], g["output_tokens"], g["cost_usd"]) == ("An answer.", 100, 50, 0.002)
    assert g["served_model"] == "sim-guardian-served" and g["error"] is None
    assert rows["scholar"]["response"] == "I can't help with that."
    assert rows["bon-vivant"]["error"] == "permanent_error (scripted)"
    assert [r["call_key"] for r in t.to_pylist()] == [r.key for r in reqs]
    assert st.summarize(t)["responses"] == 6
    assert {e.model_id for e in st.estimate(ctx.spec, {"kept_scenarios": 4})} == set(PANEL)


# ====================================================================== spectra


def test_spectra_plan_requests_and_reasks(ctx):
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.spectra import SPECTRA_SCHEMA

    st = stage_by_name("spectra")
    pairs = table([pair_row("pA", "honesty", "kindness"), pair_row("pB", "privacy", "safety"),
                   pair_row("pC", "liberty", "order"), pair_row("pX", "unused", "pair")],
                  PAIRS_SCHEMA)
    scen = _scenarios_table([
        scenario_row("a0", "pA", "Neutral A", v1="honesty", v2="kindness"),
        scenario_row("a1", "pA", "Lean A", nudge="value1", v1="honesty", v2="kindness"),
        scenario_row("a2", "pA", None, nudge="value2", status="refusal"),
        scenario_row("b0", "pB", "Neutral B", v1="privacy", v2="safety"),
        scenario_row("c0", "pC", "Neutral C", v1="liberty", v2="order"),
        scenario_row("x0", "pX", "Dropped by diversity"),
    ])
    div = _diversity_table({"a0": True, "a1": True, "b0": True, "c0": True, "x0": False})
    items = st.plan(ctx, make_inputs({"pairs": pairs, "scenarios": scen, "diversity": div}))
    assert [it["pair_id"] for it in items] == ["pA", "pB", "pC"]
    assert items[0]["queries"] == "[neutral] Neutral A\n\n[value1] Lean A"
    reqs = st.first_requests(ctx, items)
    text = user_text(reqs[0])
    assert tag(text, "value1") == "honesty" and tag(text, "queries") == items[0]["queries"]
    assert tag(text, "value2_description") == "about kindness"
    assert {(r.model_id, schema_name(r), r.sample_index) for r in reqs} == {("rubric-claude", "spectrum", 0)}

    def respond(req: CallRequest, batch: int):
        v1 = tag(user_text(req), "value1")
        if v1 == "honesty" or (v1 == "privacy" and batch == 1):
            return ok(req, spectrum(v1, tag(user_text(req), "value2")))
        return failed(req, Outcome.PARSE_ERROR if v1 == "privacy" else Outcome.TRUNCATED)

    send = ScriptedSend(respond)
    t = st.run_shard(ctx, items, send)
    assert_schema(t, SPECTRA_SCHEMA)
    assert [len(b) for b in send.batches] == [3, 2, 1]  # max_reasks = 2: three attempts at most
    assert [r.sample_index for r in send.requests] == [0, 0, 0, 1, 1, 2]  # a re-ask is a new sample (new key)
    assert send.batches[1][0].key != send.batches[0][1].key
    rows = t.to_pylist()
    a = [r for r in rows if r["pair_id"] == "pA"]
    assert len(a) == 14 and {r["status"] for r in a} == {"ok"} and {r["attempts"] for r in a} == {1}
    assert [(r["value_slot"], r["position"], r["label"]) for r in a[:7]] == [(1, i, POSITION_LABELS[i]) for i in range(7)]
    b = [r for r in rows if r["pair_id"] == "pB"]
    assert len(b) == 14 and {r["attempts"] for r in b} == {2} and b[0]["call_key"] == send.batches[1][0].key
    c = [r for r in rows if r["pair_id"] == "pC"]
    assert [(r["value_slot"], r["value"], r["status"], r["attempts"], r["position"]) for r in c] == [
        (1, "liberty", "truncated", 3, None), (2, "order", "truncated", 3, None)]
    statuses(t)
    assert st.summarize(t) == {"pairs": 3, "failed": 1, "reasked": 2}


# ====================================================================== classifications


def _matching_inputs(ctx):
    from specstress.tasks.responses import RESPONSES_SCHEMA
    from specstress.tasks.spectra import SPECTRA_SCHEMA

    scen = _scenarios_table([
        scenario_row("s1", "pA", "Query s1"), scenario_row("s2", "pA", "Query s2", nudge="value1"),
        scenario_row("s3", "pB", "Query s3", v1="privacy", v2="safety"),
        scenario_row("s4", "pC", "Query s4", v1="liberty", v2="order"),
        scenario_row("s5", "pA", None, status="refusal"), scenario_row("s6", "pA", "Query s6")])
    div = _diversity_table({"s1": True, "s2": True, "s3": True, "s4": True, "s6": False})
    resp = []
    for sid in ("s1", "s2", "s3", "s4", "s6"):
        for m in PANEL:
            if sid == "s1" and m == "bon-vivant":
                continue  # no response row at all
            if sid == "s1" and m == "individualist":
                resp.append(response_row(sid, m, outcome="refusal", response="I can't."))
                continue
            resp.append(response_row(sid, m, response=f"answer of {m} to {sid}"))
    spectra = spectra_rows("pA", "honesty", "kindness") + spectra_rows("pB", "privacy", "safety") \
        + spectra_rows("pC", "liberty", "order", status="parse_error")
    return make_inputs({"scenarios": scen, "diversity": div, "responses": table(resp, RESPONSES_SCHEMA),
                        "spectra": table(spectra, SPECTRA_SCHEMA)})


def _placements(req: CallRequest) -> dict[str, Any]:
    """A placement for every response of the prompt: R<i> gets position (i - 1) % 7 on value 1, 6 - that on value 2."""
    n = int(re.search(r"The (\d+) responses to place", user_text(req)).group(1))
    return {"placements": [{"response_id": f"R{i}", "value1": {"position": (i - 1) % 7, "confidence": 0.8,
                                                               "reasoning": f"v1 of R{i}"},
                            "value2": {"position": 6 - (i - 1) % 7, "confidence": 0.7, "reasoning": f"v2 of R{i}"}}
                           for i in range(1, n + 1)]}


def test_classifications_plan_and_first_requests(ctx):
    st = stage_by_name("classifications")
    items = st.plan(ctx, _matching_inputs(ctx))
    assert [it["scenario_id"] for it in items] == ["s1", "s2", "s3", "s4"]
    s1 = items[0]
    assert sorted(s1["order"]) == sorted(PANEL)
    assert s1["order"] == st.plan(ctx, _matching_inputs(ctx))[0]["order"]  # the seeded shuffle is stable
    assert len({tuple(it["order"]) for it in items}) > 1  # and differs per scenario
    assert s1["responses"]["individualist"] is None and s1["responses"]["bon-vivant"] is None
    assert s1["responses"]["guardian"] == "answer of guardian to s1"
    assert items[3]["spectra"] is None and items[0]["spectra"].count("<position ") == 14
    reqs = st.first_requests(ctx, items)
    assert len(reqs) == 3  # s4 has no spectrum: no call
    text = user_text(reqs[0])
    assert tag(text, "query") == "Query s1" and "The 4 responses to place" in text
    present = [m for m in s1["order"] if s1["responses"][m]]
    for i, m in enumerate(present):
        assert f'<response id="R{i + 1}">answer of {m} to s1</response>' in text
    # the stable prefix (instructions, values, spectra) is the system prompt, shared by the pair's scenarios
    assert '<spectrum slot="value1" value="honesty">' in reqs[0].system and "<spectrum" not in text
    assert [it["pair_id"] for it, r in zip(items[:3], reqs, strict=True) if r.system == reqs[0].system] == ["pA", "pA"]
    assert {(r.model_id, schema_name(r)) for r in reqs} == {("judge-gpt", "placements")}
    assert [r.key for r in reqs] == [r.key for r in st.first_requests(ctx, items)]


def test_classifications_run_shard_statuses(ctx):
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA

    st = stage_by_name("classifications")
    items = st.plan(ctx, _matching_inputs(ctx))

    def respond(req: CallRequest, batch: int):
        q = tag(user_text(req), "query")
        if q == "Query s1":  # one response left out by the judge
            p = _placements(req)
            p["placements"] = [pl for pl in p["placements"] if pl["response_id"] != "R2"]
            return ok(req, p)
        if q == "Query s2":
            return failed(req, Outcome.PARSE_ERROR) if batch == 0 else ok(req, _placements(req))
        return failed(req, Outcome.PERMANENT_ERROR)

    send = ScriptedSend(respond)
    t = st.run_shard(ctx, items, send)
    assert_schema(t, CLASSIFICATIONS_SCHEMA)
    assert [len(b) for b in send.batches] == [3, 2]  # s2 and s3 are asked again (max_reasks = 1)
    assert t.num_rows == 4 * 6 * 2  # every scenario x panel model x value: nothing dropped
    rows = by(t.to_pylist(), "scenario_id", "model_id", "value_slot")
    statuses(t)
    order = {it["scenario_id"]: it["order"] for it in items}
    present1 = [m for m in order["s1"] if m not in ("individualist", "bon-vivant")]
    for m in PANEL:
        r1 = rows[("s1", m, 1)]
        if m in ("individualist", "bon-vivant"):
            assert r1["status"] == "no_response" and r1["response_label"] is None and r1["position"] is None
        elif m == present1[1]:
            assert r1["status"] == "missing" and r1["position"] is None and r1["response_label"] == "R2"
        else:
            i = present1.index(m)
            assert r1["status"] == "ok" and r1["response_label"] == f"R{i + 1}" and r1["position"] == i % 7
            assert rows[("s1", m, 2)]["position"] == 6 - i % 7 and r1["confidence"] == 0.8
            assert r1["reasoning"] == f"v1 of R{i + 1}" and r1["call_key"] == send.batches[0][0].key
        assert r1["presented_index"] == order["s1"].index(m) and r1["judge"] == "judge-gpt"
        assert r1["value"] == "honesty" and rows[("s1", m, 2)]["value"] == "kindness"
        assert rows[("s2", m, 1)]["status"] == "ok"
        assert rows[("s2", m, 1)]["call_key"] == send.batches[1][0].key  # from the re-ask
        assert rows[("s3", m, 1)]["status"] == "judge_permanent_error" and rows[("s3", m, 1)]["position"] is None
        assert rows[("s4", m, 1)]["status"] == "no_spectrum" and rows[("s4", m, 2)]["call_key"] is None
    for r in t.to_pylist():
        assert (r["position"] is not None) == (r["status"] == "ok")
    assert st.summarize(t)["status"]["ok"] == 2 * (3 + 6)


def test_classifications_per_response_reasks_only_failed_models(tmp_path):
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA

    ctx = make_ctx(tmp_path, **{"matching.mode": "per_response"})
    st = stage_by_name("classifications")
    items = [it for it in st.plan(ctx, _matching_inputs(ctx)) if it["scenario_id"] == "s1"]
    reqs = st.first_requests(ctx, items)
    assert len(reqs) == 4 and {schema_name(r) for r in reqs} == {"placement"}
    place = {"value1": {"position": 5, "confidence": 0.9}, "value2": {"position": 1}}

    def respond(req: CallRequest, batch: int):
        if "answer of guardian" in user_text(req) and batch == 0:
            return failed(req, Outcome.TRUNCATED)
        return ok(req, place)

    send = ScriptedSend(respond)
    t = st.run_shard(ctx, items, send)
    assert_schema(t, CLASSIFICATIONS_SCHEMA)
    assert [len(b) for b in send.batches] == [4, 1]
    assert "answer of guardian" in user_text(send.batches[1][0]) and send.batches[1][0].sample_index == 1
    rows = by(t.to_pylist(), "model_id", "value_slot")
    assert rows[("guardian", 1)]["status"] == "ok" and rows[("guardian", 1)]["position"] == 5
    assert rows[("guardian", 2)]["confidence"] is None  # not given: no default score
    assert rows[("individualist", 1)]["status"] == "no_response"
    assert {e.calls for e in st.estimate(ctx.spec, {"kept_scenarios": 2})} == {12}


# ====================================================================== SQL stages


def _classification_rows() -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[int | None, int | None]]]:
    """Placements on three scenarios; returns the rows and the ok positions by (scenario, model)."""
    positions: dict[tuple[str, str], tuple[int | None, int | None]] = {}
    grid = {  # scenario -> model -> (position on value 1, on value 2); None = no ok placement
        "s1": {"guardian": (0, 6), "scholar": (0, 5), "pragmatist": (0, 6), "communitarian": (0, 6),
               "individualist": (0, 6), "bon-vivant": (6, 6)},
        "s2": {"guardian": (3, 3), "scholar": (4, 2), "pragmatist": (2, 4), "communitarian": (3, 3),
               "individualist": (None, None), "bon-vivant": (6, 0)},
        "s3": {"guardian": (1, 1), "scholar": (None, None), "pragmatist": (5, 5), "communitarian": (None, None),
               "individualist": (None, None), "bon-vivant": (None, None)},
    }
    pair = {"s1": "pA", "s2": "pA", "s3": "pB"}
    rows = []
    for sid, models in grid.items():
        for m, (p1, p2) in models.items():
            positions[(sid, m)] = (p1, p2)
            for slot, p in ((1, p1), (2, p2)):
                rows.append({"scenario_id": sid, "pair_id": pair[sid], "model_id": m, "value_slot": slot,
                             "value": f"v{slot}", "position": p, "confidence": 0.9, "reasoning": "r",
                             "status": "ok" if p is not None else "judge_failed", "judge": "judge-gpt",
                             "presented_index": 0, "response_label": "R1", "call_key": "k"})
    # a model outside the panel is not in the grid
    rows.append({**rows[0], "model_id": "outsider", "position": 3})
    return rows, positions


def _grid(ctx, tmp_path):
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA

    rows, positions = _classification_rows()
    st = stage_by_name("position_grid")
    t = st.compute(ctx, make_inputs({"classifications": table(rows, CLASSIFICATIONS_SCHEMA)}, tmp_path))
    return t, positions


def test_position_grid_packs_every_panel_position(ctx, tmp_path):
    from specstress.tasks.position_grid import POSITION_GRID_SCHEMA

    st = stage_by_name("position_grid")
    assert st.inputs == ("classifications",)
    t, positions = _grid(ctx, tmp_path)
    assert_schema(t, POSITION_GRID_SCHEMA)
    panel = sorted(PANEL)  # the grid's model order: by name, 15 a lane
    rows = by(t.to_pylist(), "scenario_id")
    assert set(rows) == {"s1", "s2", "s3"} and {r["lane"] for r in rows.values()} == {0}
    for (sid, m), (p1, p2) in positions.items():
        j = panel.index(m)
        for col, p in (("positions1", p1), ("positions2", p2)):
            assert (rows[sid][col] >> (4 * j)) & 15 == (0 if p is None else p + 1), (sid, m, col)
        assert rows[sid][col] >> (4 * len(panel)) == 0  # the outsider is not in the grid
    assert st.summarize(t) == {"scenarios": 3, "rows": 3}


def test_position_grid_rejects_bad_positions(ctx, tmp_path):
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA

    rows, _ = _classification_rows()
    rows[0] = {**rows[0], "position": 7}
    with pytest.raises(Exception, match="outside 0..6"):
        stage_by_name("position_grid").compute(
            ctx, make_inputs({"classifications": table(rows, CLASSIFICATIONS_SCHEMA)}, tmp_path))


def test_disagreement_per_subset(ctx, tmp_path):
    from specstress.tasks.disagreement import DISAGREEMENT_SCHEMA

    grid, positions = _grid(ctx, tmp_path)
    st = stage_by_name("disagreement")
    assert st.inputs == ("position_grid",)
    t = st.compute(ctx, make_inputs({"position_grid": grid}, tmp_path))
    assert_schema(t, DISAGREEMENT_SCHEMA)
    rows = by(t.to_pylist(), "subset", "scenario_id")
    subsets = ctx.spec.all_subsets()
    expected = {}
    for name, members in subsets.items():
        for sid in ("s1", "s2", "s3"):
            placed = [positions[(sid, m)] for m in members if positions[(sid, m)][0] is not None]
            if len(placed) < 2:
                continue
            d = max(float(np.std([p[0] for p in placed])), float(np.std([p[1] for p in placed])))
            expected[(name, sid)] = (len(placed), len(members), d)
    assert set(rows) == set(expected)  # fewer than two placements: no row
    for k, (n, size, d) in expected.items():
        r = rows[k]
        assert (r["n_models"], r["subset_size"]) == (n, size) and r["d"] == pytest.approx(d)
        assert r["high"] == (d >= 1.5) and r["pair_id"] == ("pB" if k[1] == "s3" else "pA")
    assert rows[("all", "s3")]["d"] == 2.0 and rows[("all", "s3")]["bin"] == "[2,2.5)"  # exactly on the edge
    assert rows[("openai_sdk", "s1")]["d"] == 0.5 and rows[("openai_sdk", "s1")]["bin"] == "[0,1)"
    assert st.summarize(t)["all"]["scenarios"] == 3


def test_outliers_flags_the_lone_model(ctx, tmp_path):
    from specstress.tasks.outliers import OUTLIERS_SCHEMA

    grid, positions = _grid(ctx, tmp_path)
    st = stage_by_name("outliers")
    t = st.compute(ctx, make_inputs({"position_grid": grid}, tmp_path))
    assert_schema(t, OUTLIERS_SCHEMA)
    rows = by(t.to_pylist(), "scenario_id", "model_id")
    bv = rows[("s1", "bon-vivant")]
    # 5 others placed s1; ceil(9/11 x 5) = 5 of them are >= 4 points away on value 1
    assert (bv["n_models"], bv["position_value1"], bv["apart_value1"], bv["needed"], bv["outlier"]) == (6, 6, 5, 5, True)
    assert not any(r["outlier"] for k, r in rows.items() if k != ("s1", "bon-vivant"))
    assert rows[("s1", "guardian")]["apart_value1"] == 1
    # a scenario only two models placed: rows, but never an outlier (n < 3)
    assert {k[1] for k in rows if k[0] == "s3"} == {"guardian", "pragmatist"}
    assert ("s2", "individualist") not in rows  # no placement, no row
    assert st.summarize(t) == {"outliers_by_model": {"bon-vivant": 1}}


def test_value_priorities_scores(ctx, tmp_path):
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.value_priorities import PRIORITIES_SCHEMA

    grid, positions = _grid(ctx, tmp_path)
    pairs = table([pair_row("pA", "v1", "v2", "Cat A", "Cat B"), pair_row("pB", "v1", "v2", "Cat B", "Cat C")],
                  PAIRS_SCHEMA)
    st = stage_by_name("value_priorities")
    assert set(st.inputs) == {"pairs", "position_grid"}
    t = st.compute(ctx, make_inputs({"pairs": pairs, "position_grid": grid}, tmp_path))
    assert_schema(t, PRIORITIES_SCHEMA)
    rows = by(t.to_pylist(), "model_id", "category")
    cats = {"s1": ("Cat A", "Cat B"), "s2": ("Cat A", "Cat B"), "s3": ("Cat B", "Cat C")}
    tally: dict[tuple[str, str], list[tuple[int, int | None]]] = {}
    for (sid, m), (p1, p2) in positions.items():
        for cat, p, other in ((cats[sid][0], p1, p2), (cats[sid][1], p2, p1)):
            if p is not None:
                tally.setdefault((m, cat), []).append((p, other))
    assert set(rows) == set(tally)
    for k, placed in tally.items():
        r = rows[k]
        assert r["n"] == len(placed)
        assert r["score"] == pytest.approx(sum((p - 3) / 3 for p, _ in placed) / len(placed))
        duels = [1.0 if p > o else 0.5 if p == o else 0.0 for p, o in placed if o is not None]
        assert r["duels"] == len(duels) and r["win_rate"] == pytest.approx(sum(duels) / len(duels))
        panel_mean = np.mean([rows[x]["score"] for x in rows if x[1] == k[1]])
        assert r["distinctiveness"] == pytest.approx(r["score"] - panel_mean)
        assert r["top_category"] == "Top " + k[1]
    for m in {k[0] for k in rows}:
        ranked = sorted((r for k, r in rows.items() if k[0] == m), key=lambda r: r["rank"])
        assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
        assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert st.summarize(t)["top_category"]["bon-vivant"] == "Cat A"


# ====================================================================== high disagreement


def test_high_disagreement_keeps_most_contested_of_near_duplicates(ctx, tmp_path):
    from specstress.tasks.disagreement import DISAGREEMENT_SCHEMA
    from specstress.tasks.high_disagreement import HIGH_SCHEMA

    st = stage_by_name("high_disagreement")
    emb = _embeddings_table({"sA": [1, 0, 0], "sA2": [0.99, 0.141, 0], "sB": [0, 1, 0], "sC": [0, 0, 1]})
    d = {"sA": 2.0, "sA2": 2.5, "sB": 1.6, "sC": 0.5, "sZ": 2.9}  # sZ has no embedding
    dis = table([{"subset": s, "scenario_id": sid, "pair_id": "p", "d": v, "high": v >= 1.5}
                 for s in ("all", "openai_sdk") for sid, v in d.items() if s == "all" or sid == "sB"],
                DISAGREEMENT_SCHEMA)
    t = st.compute(ctx, make_inputs({"disagreement": dis, "embeddings": emb}))
    assert_schema(t, HIGH_SCHEMA)
    rows = by(t.to_pylist(), "subset", "scenario_id")
    assert set(rows) == {("all", "sA"), ("all", "sA2"), ("all", "sB"), ("openai_sdk", "sB")}
    assert rows[("all", "sA2")]["kept"] and rows[("all", "sB")]["kept"] and not rows[("all", "sA")]["kept"]
    assert rows[("all", "sA")]["center_id"] == "sA2" and rows[("all", "sA")]["cluster_size"] == 0
    assert rows[("all", "sA2")]["cluster_size"] == 2 and rows[("all", "sA2")]["d"] == 2.5
    assert st.summarize(t) == {"all": {"high": 3, "kept": 2}, "openai_sdk": {"high": 1, "kept": 1}}
    off = st.compute(make_ctx(tmp_path, **{"diversity.enabled": False}),
                     make_inputs({"disagreement": dis, "embeddings": emb}))
    assert all(off.column("kept").to_pylist())


# ====================================================================== scoped analyses


def _scoped_inputs(with_high: bool = False):
    from specstress.tasks.high_disagreement import HIGH_SCHEMA
    from specstress.tasks.responses import RESPONSES_SCHEMA

    scen = _scenarios_table([scenario_row("s1", "pA", "Query s1"), scenario_row("s2", "pA", "Query s2"),
                             scenario_row("s3", "pA", "Query s3")])
    resp = [response_row("s1", "guardian", response="Sure, here it is."),
            response_row("s1", "scholar", response="I would rather not."),
            response_row("s1", "pragmatist", outcome="refusal", response="No."),
            response_row("s1", "communitarian", outcome="truncated"),
            response_row("s1", "individualist", outcome="content_filter"),
            response_row("s1", "bon-vivant", response=""),
            response_row("s2", "guardian", response="Answer to s2."),
            response_row("s3", "guardian", response="Answer to s3.")]
    tables = {"scenarios": scen, "diversity": _diversity_table({"s1": True, "s2": True, "s3": False}),
              "responses": table(resp, RESPONSES_SCHEMA)}
    if with_high:
        tables["high_disagreement"] = table(
            [{"subset": "all", "scenario_id": "s1", "d": 2.0, "kept": True, "center_id": "s1", "distance": 0.0,
              "cluster_size": 1},
             {"subset": "all", "scenario_id": "s2", "d": 1.9, "kept": False, "center_id": "s1", "distance": 0.1,
              "cluster_size": 0},
             {"subset": "openai_sdk", "scenario_id": "s2", "d": 1.9, "kept": True, "center_id": "s2",
              "distance": 0.0, "cluster_size": 1}], HIGH_SCHEMA)
    return make_inputs(tables)


def test_topics_plan_requests_and_statuses(ctx, tmp_path):
    from specstress.tasks.topics import TOPICS_SCHEMA

    st = stage_by_name("topics")
    assert st.enabled(ctx.spec) and st.models_used(ctx.spec) == ["judge-gemini"]
    assert st.inputs_for(ctx.spec) == ("scenarios", "diversity")  # scope: all
    items = st.plan(ctx, _scoped_inputs())
    assert items == [{"scenario_id": "s1", "query": "Query s1"}, {"scenario_id": "s2", "query": "Query s2"}]
    reqs = st.first_requests(ctx, items)
    assert [tag(user_text(r), "query") for r in reqs] == ["Query s1", "Query s2"]
    assert {(r.model_id, schema_name(r)) for r in reqs} == {("judge-gemini", "topics")}

    def respond(req: CallRequest, batch: int):
        if "Query s1" in user_text(req):
            return ok(req, {"topics": ["politics", "cyber_security", "politics"], "reasoning": "why"})
        return failed(req, Outcome.REFUSAL)

    t = st.run_shard(ctx, items, ScriptedSend(respond))
    assert_schema(t, TOPICS_SCHEMA)
    rows = by(t.to_pylist(), "scenario_id")
    assert rows["s1"]["topics"] == ["cyber_security", "politics"] and rows["s1"]["status"] == "ok"
    assert rows["s2"]["topics"] is None and rows["s2"]["status"] == "refusal"
    assert rows["s2"]["reasoning"] == "refusal (scripted)" and rows["s2"]["call_key"] == reqs[1].key
    assert st.summarize(t) == {"scenarios": 2, "tags": {"cyber_security": 1, "politics": 1}}

    high = make_ctx(tmp_path, **{"topics.scope": "high_disagreement"})
    assert "high_disagreement" in st.inputs_for(high.spec)
    assert [it["scenario_id"] for it in st.plan(high, _scoped_inputs(with_high=True))] == ["s1"]
    assert not st.enabled(make_ctx(tmp_path, **{"topics.enabled": False}).spec)


def test_refusals_ladder_and_api_outcomes(ctx):
    from specstress.tasks.refusals import REFUSALS_SCHEMA

    st = stage_by_name("refusals")
    items = st.plan(ctx, _scoped_inputs())
    assert [(it["scenario_id"], it["model_id"]) for it in items] == [("s1", m) for m in PANEL] + [("s2", "guardian")]
    reqs = st.first_requests(ctx, items)
    assert len(reqs) == 3  # guardian, scholar on s1 and guardian on s2: only ok answers with text are classified
    assert tag(user_text(reqs[1]), "response") == "I would rather not."
    assert {(r.model_id, schema_name(r)) for r in reqs} == {("judge-gemini", "refusal_level")}

    def respond(req: CallRequest, batch: int):
        resp = tag(user_text(req), "response")
        if resp == "Sure, here it is.":
            return ok(req, {"level": "full_compliance", "reasoning": "complies"})
        if resp == "I would rather not.":
            return ok(req, {"level": "soft_refusal"})
        return failed(req, Outcome.PARSE_ERROR)

    send = ScriptedSend(respond)
    t = st.run_shard(ctx, items, send)
    assert_schema(t, REFUSALS_SCHEMA)
    assert len(send.requests) == 3
    rows = by(t.to_pylist(), "scenario_id", "model_id")
    assert len(rows) == len(items)
    statuses(t)
    got = {k[1] if k[0] == "s1" else k: (r["level"], r["refusal"], r["source"], r["status"]) for k, r in rows.items()}
    assert got == {
        "guardian": (0, False, "classifier", "ok"),
        "scholar": (REFUSAL_LADDER.index("soft_refusal"), True, "classifier", "ok"),
        "pragmatist": (6, True, "api_outcome", "ok"),
        "communitarian": (None, None, "none", "no_response:truncated"),
        "individualist": (6, True, "api_outcome", "ok"),
        "bon-vivant": (None, None, "none", "no_response:ok"),
        ("s2", "guardian"): (None, None, "classifier", "parse_error"),
    }
    assert rows[("s1", "pragmatist")]["call_key"] is None and rows[("s1", "guardian")]["call_key"] == reqs[0].key
    assert rows[("s1", "scholar")]["label"] == "soft_refusal"
    assert st.summarize(t)["refusal_rate"] == {"guardian": 0.0, "scholar": 1.0, "pragmatist": 1.0,
                                               "individualist": 1.0}


def _commit_taxonomy(ctx):
    """Put a small taxonomy artefact in the run's warehouse, under the id the run spec gives it
    (priority_freeform reads the taxonomy there, not from its inputs)."""
    from specstress.taxonomy import TAXONOMY_SCHEMA

    values = [("careful documentation", "Recording methods and sources.", "Methodical rigor"),
              ("protecting children", "Keeping minors safe from harm.", "Protecting vulnerable entities"),
              ("pleasure seeking", "Enjoying food, fun and comfort.", "Pleasure and enjoyment")]
    tax = table([{"value_id": f"v{i}", "value": v, "description": d, "cluster_l1": c, "category": c,
                  "category_description": c, "top_category": "Top", "source": "file"}
                 for i, (v, d, c) in enumerate(values)], TAXONOMY_SCHEMA)
    aid = artefact_ids(ctx.spec)["taxonomy"]
    wh = Warehouse(ctx.warehouse_root)
    wh.write_part("taxonomy", aid, wh.part_name(0), tax)
    wh.commit_artefact(artefact_id=aid, stage="taxonomy", stage_version="1", input_ids=[], config={},
                       template_hashes={}, run_id=ctx.run_id)
    return tax


def test_priority_freeform_maps_phrases_to_taxonomy(ctx):
    from specstress.tasks.priority_freeform import FREEFORM_SCHEMA

    st = stage_by_name("priority_freeform")
    assert ctx.spec.priorities.scope == "high_disagreement"
    assert "high_disagreement" in st.inputs_for(ctx.spec)
    _commit_taxonomy(ctx)
    items = st.plan(ctx, _scoped_inputs(with_high=True))
    # only the kept high-disagreement scenario of the 'all' subset, only answered responses with text
    assert [(it["scenario_id"], it["model_id"]) for it in items] == [("s1", "guardian"), ("s1", "scholar")]
    items = items + [{**items[0], "model_id": "pragmatist", "response": "Text three."},
                     {**items[0], "model_id": "communitarian", "response": "Text four."}]
    reqs = st.first_requests(ctx, items)
    assert tag(user_text(reqs[0]), "response") == "Sure, here it is." and tag(user_text(reqs[0]), "query") == "Query s1"
    assert {(r.model_id, schema_name(r)) for r in reqs} == {("judge-claude", "value_expressed")}
    script = {"Sure, here it is.": lambda r: ok(r, {"value": "protecting children", "reasoning": "r"}),
              "I would rather not.": lambda r: failed(r, Outcome.REFUSAL),
              "Text three.": lambda r: ok(r, {}),
              "Text four.": lambda r: failed(r, Outcome.PARSE_ERROR)}
    t = st.run_shard(ctx, items, ScriptedSend(lambda req, b: script[tag(user_text(req), "response")](req)))
    assert_schema(t, FREEFORM_SCHEMA)
    rows = by(t.to_pylist(), "model_id")
    g = rows["guardian"]
    assert (g["expressed"], g["nearest_value"], g["category"], g["status"]) == (
        "protecting children", "protecting children", "Protecting vulnerable entities", "ok")
    assert 0 < g["similarity"] <= 1.0001
    assert {m: r["status"] for m, r in rows.items()} == {"guardian": "ok", "scholar": "refusal", "pragmatist": "empty",
                                                         "communitarian": "parse_error"}
    assert all(r["nearest_value"] is None for m, r in rows.items() if m != "guardian")
    est = st.estimate(ctx.spec, {"responses": 40})
    assert est[0].calls == 10 and est[0].model_id == "judge-claude"


def test_priority_freeform_without_taxonomy_artefact_fails_loudly(ctx):
    st = stage_by_name("priority_freeform")
    items = st.plan(ctx, _scoped_inputs(with_high=True))
    with pytest.raises(FileNotFoundError, match="taxonomy"):
        st.run_shard(ctx, items, ScriptedSend(lambda req, b: ok(req, {"value": "x y"})))


# ====================================================================== compliance


def _compliance_inputs():
    from specstress.tasks.disagreement import DISAGREEMENT_SCHEMA
    from specstress.tasks.high_disagreement import HIGH_SCHEMA
    from specstress.tasks.responses import RESPONSES_SCHEMA

    scen = _scenarios_table([scenario_row(f"s{i}", "pA", f"Query s{i}") for i in range(1, 5)])
    div = _diversity_table({"s1": True, "s2": True, "s3": True, "s4": False})
    resp = []
    for sid in ("s1", "s2", "s3", "s4"):
        resp += [response_row(sid, "guardian", response=f"guardian on {sid}"),
                 response_row(sid, "scholar", outcome="refusal" if sid == "s2" else "truncated"),
                 response_row(sid, "pragmatist", response="not in the group")]
    resp[4] = response_row("s2", "scholar", outcome="refusal", response="I won't.")
    dis = [{"subset": "openai_sdk", "scenario_id": "s1", "pair_id": "pA", "d": 2.2, "bin": "[2,2.5)", "high": True},
           {"subset": "openai_sdk", "scenario_id": "s2", "pair_id": "pA", "d": 0.5, "bin": "[0,1)", "high": False},
           {"subset": "openai_sdk", "scenario_id": "s4", "pair_id": "pA", "d": 0.5, "bin": "[0,1)", "high": False},
           {"subset": "all", "scenario_id": "s3", "pair_id": "pA", "d": 1.0, "bin": "[1,1.5)", "high": False}]
    high = [{"subset": "all", "scenario_id": "s1", "d": 2.2, "kept": True, "center_id": "s1", "distance": 0.0,
             "cluster_size": 1},
            {"subset": "openai_sdk", "scenario_id": "s1", "d": 2.2, "kept": True, "center_id": "s1",
             "distance": 0.0, "cluster_size": 1}]
    return make_inputs({"scenarios": scen, "diversity": div, "responses": table(resp, RESPONSES_SCHEMA),
                        "disagreement": table(dis, DISAGREEMENT_SCHEMA), "high_disagreement": table(high, HIGH_SCHEMA)})


def test_compliance_plan_samples_and_requests(ctx):
    from specstress.tasks.compliance import model_spec_text

    st = stage_by_name("compliance")
    assert st.enabled(ctx.spec) and st.group(ctx.spec) == ["guardian", "scholar"]
    items = st.plan(ctx, _compliance_inputs())
    # s3 is not in the subset's disagreement rows, s4 was dropped by diversity; pragmatist is not in the group
    assert [(it["scenario_id"], it["model_id"]) for it in items] == [
        ("s1", "guardian"), ("s1", "scholar"), ("s2", "guardian"), ("s2", "scholar")]
    s1 = items[0]
    assert s1["samples"] == ["bin:[2,2.5)", "high:all", "high:openai_sdk", "random"]
    assert (s1["subset"], s1["d"], s1["bin"], s1["group_size"]) == ("openai_sdk", 2.2, "[2,2.5)", 2)
    assert items[1]["response"] is None and items[1]["outcome"] == "truncated"
    assert items[3]["response"] == "I won't."  # a refusal is an answer, and is judged
    reqs = st.first_requests(ctx, items)
    judges = ["judge-claude", "judge-gpt", "judge-gemini"]
    assert [r.model_id for r in reqs] == judges * 3 and {schema_name(r) for r in reqs} == {"compliance_verdict"}
    text = user_text(reqs[0])
    # the whole model spec is the system prompt (the cacheable prefix of every compliance call), not the user's
    assert tag(reqs[0].system, "model_spec") == model_spec_text(ctx.spec)[0].strip() and "<model_spec>" not in text
    assert len({r.system for r in reqs}) == 1
    assert tag(text, "query") == "Query s1" and tag(text, "response") == "guardian on s1"
    assert len({r.key for r in reqs}) == 9
    assert [e.model_id for e in st.estimate(ctx.spec, {})] == judges


def test_compliance_run_shard_rows_for_every_judge(ctx):
    from specstress.tasks.compliance import COMPLIANCE_SCHEMA

    st = stage_by_name("compliance")
    items = st.plan(ctx, _compliance_inputs())
    script = {"judge-claude": lambda r: ok(r, {"verdict": "non_compliant", "reasoning": "why", "sections": ["a"]}),
              "judge-gpt": lambda r: failed(r, Outcome.PARSE_ERROR),
              "judge-gemini": lambda r: failed(r, Outcome.PERMANENT_ERROR)}
    send = ScriptedSend(lambda req, b: script[req.model_id](req))
    t = st.run_shard(ctx, items, send)
    assert_schema(t, COMPLIANCE_SCHEMA)
    assert len(send.batches) == 1 and len(send.requests) == 9
    rows = by(t.to_pylist(), "scenario_id", "model_id", "judge")
    assert len(rows) == 4 * 3  # every item x judge, answered or not
    statuses(t)
    c = rows[("s1", "guardian", "judge-claude")]
    assert (c["verdict"], c["sections"], c["status"], c["d"], c["bin"]) == ("non_compliant", ["a"], "ok", 2.2,
                                                                             "[2,2.5)")
    assert rows[("s1", "guardian", "judge-gpt")]["status"] == "parse_error"
    assert rows[("s1", "guardian", "judge-gemini")]["verdict"] is None
    for j in ("judge-claude", "judge-gpt", "judge-gemini"):
        r = rows[("s1", "scholar", j)]
        assert (r["status"], r["verdict"], r["call_key"]) == ("no_response:truncated", None, None)
    assert st.summarize(t)["verdicts_by_judge"]["judge-claude"] == {"non_compliant": 3, "no_response:truncated": 1}


# ====================================================================== every stage


def test_sender_refuses_unfinished_and_mostly_refused_batches():
    """The Sender the stages get: unfinished outcomes and mass permanent errors stop a shard."""
    reqs = [CallRequest(provider="openai", model="m", messages=[{"role": "user", "content": str(i)}])
            for i in range(6)]

    class Eng:
        def __init__(self, outcome):
            self.outcome = outcome

        def run_calls(self, requests, stage):
            return [failed(r, self.outcome) for r in requests]

        def flush(self):
            pass

    with pytest.raises(ShardIncomplete):
        Sender(Eng(Outcome.RETRYABLE_ERROR), "x")(reqs)
    with pytest.raises(FatalProviderError):
        Sender(Eng(Outcome.PERMANENT_ERROR), "x")(reqs)
    assert len(Sender(Eng(Outcome.REFUSAL), "x")(reqs)) == 6
    assert Sender(Eng(Outcome.OK), "x")([]) == []


@pytest.mark.parametrize("name", [s.name for s in all_stages()])
def test_stage_declaration(ctx, name, tmp_path):
    """Every stage: a schema, an estimate naming only the spec's models, and a stable artefact id."""
    st = stage_by_name(name)
    spec = ctx.spec
    if not st.enabled(spec):   # the judge-swap stages need a second matcher
        spec = make_ctx(tmp_path, **{"roles.matchers": ["judge-gpt", "judge-claude"]}).spec
    assert st.enabled(spec)
    assert st.schema is not None and st.kind in ("compute", "calls")
    known = {m.id for m in spec.models}
    assert set(st.models_used(spec)) <= known
    for row in st.estimate(spec, {}):
        assert row.stage == name and row.model_id in known and row.calls >= 0 and row.input_tokens >= 0
    if st.kind == "calls":
        assert st.shard_size(spec) >= 1 and st.models_used(spec)
    ids = artefact_ids(spec)
    assert ids[name].startswith(name[:4] + "-") and ids[name] == artefact_ids(spec)[name]


def test_value_strengths_bradley_terry_from_duels(ctx, tmp_path):
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.value_strengths import STRENGTHS_SCHEMA

    panel = list(ctx.spec.roles.panel)
    pairs = table([pair_row("pAB", "a", "b", "Cat A", "Cat B"), pair_row("pBC", "b", "c", "Cat B", "Cat C"),
                   pair_row("pAC", "a", "c", "Cat A", "Cat C"), pair_row("pAA", "a", "a2", "Cat A", "Cat A")],
                  PAIRS_SCHEMA)
    rows = []

    def place(sid, pid, model, p1, p2, status="ok"):
        for slot, p in ((1, p1), (2, p2)):
            rows.append({"scenario_id": sid, "pair_id": pid, "model_id": model, "value_slot": slot, "value": "v",
                         "position": p if status == "ok" else None, "confidence": None, "reasoning": None,
                         "status": status, "judge": "j", "presented_index": None, "response_label": None,
                         "call_key": None})

    # panel[0]: A beats B and C, B beats C (plus a tie, a same-category duel and a failed placement)
    for i in range(6):
        place(f"ab{i}", "pAB", panel[0], 5, 2)
        place(f"bc{i}", "pBC", panel[0], 4, 1)
        place(f"ac{i}", "pAC", panel[0], 6, 0)
        place(f"ab{i}", "pAB", panel[1], 1, 5)   # panel[1]: the reverse order
        place(f"bc{i}", "pBC", panel[1], 2, 5)
        place(f"ac{i}", "pAC", panel[1], 0, 6)
    place("tie", "pAB", panel[0], 3, 3)
    place("same", "pAA", panel[0], 6, 0)
    place("bad", "pAB", panel[0], None, None, status="judge_failed")
    place("out", "pAB", "not-in-panel", 0, 6)
    st = stage_by_name("value_strengths")
    t = st.compute(ctx, make_inputs({"classifications": table(rows, CLASSIFICATIONS_SCHEMA), "pairs": pairs},
                                    tmp_path))
    assert_schema(t, STRENGTHS_SCHEMA)
    got = by(t.to_pylist(), "model_id", "category")
    assert {m for m, _ in got} == {panel[0], panel[1]}               # only panel models, only ok placements
    assert [got[(panel[0], c)]["rank"] for c in ("Cat A", "Cat B", "Cat C")] == [1, 2, 3]
    assert [got[(panel[1], c)]["rank"] for c in ("Cat A", "Cat B", "Cat C")] == [3, 2, 1]
    assert got[(panel[0], "Cat A")]["duels"] == 6 + 6 + 1             # 12 decisive duels and the tie
    for r in got.values():
        assert r["ci_low"] <= r["strength"] <= r["ci_high"] and r["rank_low"] <= r["rank"] <= r["rank_high"]


def test_uncertainty_intervals_around_the_views_numbers(ctx, tmp_path):
    """The stage reads its inputs' Parquet parts: mean D, category scores and ranks, each with an interval
    around the estimate the analyses give, and the run spec's resamples and confidence."""
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.uncertainty import UNCERTAINTY_SCHEMA
    from specstress.warehouse.sql_files import run_model

    panel = sorted(ctx.spec.roles.panel)
    pairs = table([pair_row("pAB", "a", "b", "Cat A", "Cat B"), pair_row("pBC", "b", "c", "Cat B", "Cat C")],
                  PAIRS_SCHEMA)
    rows = []
    for i in range(40):
        pid = ("pAB", "pBC")[i % 2]
        for k, m in enumerate(panel):
            for slot in (1, 2):
                rows.append({"scenario_id": f"s{i:02d}", "pair_id": pid, "model_id": m, "value_slot": slot,
                             "value": "v", "position": (i * (k + 1) + 3 * slot) % 7, "status": "ok", "judge": "j"})
    cls = table(rows, CLASSIFICATIONS_SCHEMA)
    sub = subsets_table(ctx.spec)
    grid = run_model("position_grid", {"classifications": cls, "subsets": sub})
    dis = run_model("disagreement", {"position_grid": grid, "subsets": sub}, {"high": 1.5})
    pri = run_model("value_priorities", {"position_grid": grid, "pairs": pairs, "subsets": sub})
    st = stage_by_name("uncertainty")
    assert st.enabled(ctx.spec) and {"position_grid", "disagreement", "value_priorities"} <= set(st.inputs_for(ctx.spec))
    t = st.compute(ctx, make_inputs({"position_grid": grid, "pairs": pairs, "disagreement": dis,
                                     "value_priorities": pri}, tmp_path))
    assert_schema(t, UNCERTAINTY_SCHEMA)
    got = t.to_pylist()
    assert {r["resamples"] for r in got} == {ctx.spec.uncertainty.resamples}
    (mean_all,) = [r for r in got if r["metric"] == "mean_d" and r["subset"] == "all"]
    ds = [r["d"] for r in dis.to_pylist() if r["subset"] == "all"]
    assert mean_all["estimate"] == pytest.approx(sum(ds) / len(ds)) and mean_all["n"] == len(ds) == 40
    assert mean_all["ci_low"] < mean_all["estimate"] < mean_all["ci_high"]
    scores = {(r["model_id"], r["category"]): r for r in got if r["metric"] == "category_score"}
    assert len(scores) == len(panel) * 3
    for p in pri.to_pylist():
        assert scores[(p["model_id"], p["category"])]["estimate"] == pytest.approx(p["score"])
    assert not [r for r in got if r["metric"] in ("refusal_rate", "outlier_count", "fold_vs_random")]


def test_matcher_panel_places_every_scenario_by_each_further_matcher(tmp_path):
    """roles.matchers: the further matchers place the same items with their own calls; roles.matcher's calls
    (the classifications stage) are the very same requests as with one matcher, so the ledger answers them."""
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA

    one = make_ctx(tmp_path)
    many = make_ctx(tmp_path, **{"roles.matchers": ["judge-gpt", "judge-claude", "judge-gemini"]})
    st = stage_by_name("matcher_panel")
    assert not st.enabled(one.spec) and st.enabled(many.spec)
    assert st.models_used(many.spec) == ["judge-claude", "judge-gemini"]
    assert [r.model_id for r in st.estimate(many.spec, {})] == ["judge-claude", "judge-gemini"]
    base = stage_by_name("classifications")
    assert [r.key for r in base.first_requests(many, base.plan(many, _matching_inputs(many)))] == \
        [r.key for r in base.first_requests(one, base.plan(one, _matching_inputs(one)))]
    items = st.plan(many, _matching_inputs(many))
    assert [(it["judge"], it["scenario_id"]) for it in items][:5] == [
        ("judge-claude", "s1"), ("judge-claude", "s2"), ("judge-claude", "s3"), ("judge-claude", "s4"),
        ("judge-gemini", "s1")]
    send = ScriptedSend(lambda req, batch: ok(req, _placements(req)))
    t = st.run_shard(many, items, send)
    assert_schema(t, CLASSIFICATIONS_SCHEMA)
    assert {r.model_id for b in send.batches for r in b} == {"judge-claude", "judge-gemini"}
    assert sum(len(b) for b in send.batches) == 2 * 3          # three scenarios with a spectrum, two matchers
    rows = t.to_pylist()
    assert {r["judge"] for r in rows} == {"judge-claude", "judge-gemini"}
    assert len(rows) == 2 * 4 * len(PANEL) * 2                 # matcher x scenario x model x value


def test_sensitivity_compares_each_matchers_conclusions(ctx):
    """Two matchers that agree give overlap 1 everywhere; a matcher that reverses every placement keeps the
    disagreement (D is symmetric) but turns every model's top categories into its bottom ones."""
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.sensitivity import SENSITIVITY_SCHEMA, sensitivity_table

    cats = [f"Cat {c}" for c in "ABCDEF"]
    pairs = table([pair_row(f"p{i}", f"a{i}", f"b{i}", cats[i % 6], cats[(i + 1) % 6]) for i in range(12)],
                  PAIRS_SCHEMA)
    panel = sorted(ctx.spec.roles.panel)
    rows = {"judge-gpt": [], "same": [], "reversed": []}
    rnd = random.Random(5)
    for i in range(60):
        for m in panel:
            for slot in (1, 2):
                pos = rnd.randint(0, 6)
                for judge, p in (("judge-gpt", pos), ("same", pos), ("reversed", 6 - pos)):
                    rows[judge].append({"scenario_id": f"s{i:02d}", "pair_id": f"p{i % 12}", "model_id": m,
                                        "value_slot": slot, "value": "v", "position": p, "status": "ok",
                                        "judge": judge})
    placements = {j: table(r, CLASSIFICATIONS_SCHEMA) for j, r in rows.items()}
    t = sensitivity_table(placements, pairs, subsets_table(ctx.spec), None, primary="judge-gpt", high=1.5,
                          min_gap=4, min_share=9 / 11)
    assert_schema(t, SENSITIVITY_SCHEMA)
    got = t.to_pylist()
    same = [r for r in got if r["matcher"] == "same"]
    assert same and all(r["overlap"] == 1.0 for r in same if r["overlap"] is not None)
    rev = {(r["conclusion"], r["model_id"]): r for r in got if r["matcher"] == "reversed"}
    assert rev[("high_disagreement_set", None)]["overlap"] == 1.0     # D is symmetric under reversal
    assert rev[("high_disagreement_set", None)]["n"] > 0
    # reversed scores: the top 3 of 6 categories become the bottom 3 (ties aside)
    assert sum(rev[("top3_categories", m)]["overlap"] for m in panel) / len(panel) < 0.2
    assert {r["primary_matcher"] for r in got if r["matcher"] == "judge-gpt"} == {True}
    assert not [r for r in got if r["conclusion"] == "fold_increase"]   # no compliance verdicts given


def test_position_bias_flags_a_matcher_that_favours_the_first_shown_answer(tmp_path):
    """classifications (roles.matcher) and matcher_panel (a further matcher) in; per matcher and value slot, the
    mean position per presented slot and a within-scenario permutation test (tests/test_position_bias.py has more)."""
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
    from specstress.tasks.position_bias import POSITION_BIAS_SCHEMA

    many = make_ctx(tmp_path, **{"roles.matchers": ["judge-gpt", "judge-claude"]})
    st = stage_by_name("position_bias")
    assert st.inputs_for(many.spec) == ("classifications", "matcher_panel")
    rnd = random.Random(2)
    rows = {"judge-gpt": [], "judge-claude": []}
    for s in range(120):
        base = rnd.randint(1, 5)
        order = rnd.sample(range(len(PANEL)), len(PANEL))
        for m, k in zip(PANEL, order, strict=True):
            for judge, out in rows.items():
                shift = 1 if judge == "judge-claude" and k == 0 else 0      # judge-claude favours the first shown
                for slot in (1, 2):
                    out.append({"scenario_id": f"s{s}", "model_id": m, "value_slot": slot, "status": "ok",
                                "position": min(6, base + rnd.randint(-1, 1) + shift), "judge": judge,
                                "presented_index": k})
    t = st.compute(many, make_inputs({"classifications": table(rows["judge-gpt"], CLASSIFICATIONS_SCHEMA),
                                      "matcher_panel": table(rows["judge-claude"], CLASSIFICATIONS_SCHEMA)}))
    assert_schema(t, POSITION_BIAS_SCHEMA)
    got = by(t.to_pylist(), "judge", "value_slot", "presented_index")
    assert len(got) == 2 * 3 * len(PANEL) and got[("judge-gpt", "all", 0)]["n"] == 240
    assert got[("judge-claude", "all", 0)]["biased"] and got[("judge-claude", "1", 0)]["p_value"] < 0.01
    assert not got[("judge-gpt", "all", 0)]["biased"] and got[("judge-gpt", "all", 0)]["primary_matcher"]
    assert got[("judge-claude", "all", 0)]["deviation"] > 0.5
    assert st.summarize(t)["p_value"]["judge-gpt"] > 0.01


COVERAGE: dict[str, list[str]] = {
    "taxonomy": ["test_taxonomy_from_file", "test_taxonomy_expand_adds_only_new_distinct_values"],
    "pairs": ["test_pairs_sample_distinct_oriented_pairs", "test_pairs_categories_filter_and_errors"],
    "scenarios": ["test_scenarios_plan_and_first_requests", "test_scenarios_run_shard_keeps_every_outcome",
                  "test_scenarios_unbiased_sends_neutral_only"],
    "embeddings": ["test_embeddings_local_only_usable_scenarios", "test_embeddings_remote_batches_and_normalises"],
    "diversity": ["test_diversity_drops_near_duplicates"],
    "responses": ["test_responses_plan_requests_and_outcomes"],
    "spectra": ["test_spectra_plan_requests_and_reasks"],
    "classifications": ["test_classifications_plan_and_first_requests", "test_classifications_run_shard_statuses",
                        "test_classifications_per_response_reasks_only_failed_models"],
    "position_grid": ["test_position_grid_packs_every_panel_position", "test_position_grid_rejects_bad_positions"],
    "disagreement": ["test_disagreement_per_subset"],
    "high_disagreement": ["test_high_disagreement_keeps_most_contested_of_near_duplicates"],
    "compliance": ["test_compliance_plan_samples_and_requests", "test_compliance_run_shard_rows_for_every_judge"],
    "outliers": ["test_outliers_flags_the_lone_model"],
    "priority_freeform": ["test_priority_freeform_maps_phrases_to_taxonomy",
                          "test_priority_freeform_without_taxonomy_artefact_fails_loudly"],
    "refusals": ["test_refusals_ladder_and_api_outcomes"],
    "topics": ["test_topics_plan_requests_and_statuses"],
    "value_priorities": ["test_value_priorities_scores"],
    "value_strengths": ["test_value_strengths_bradley_terry_from_duels"],
    "uncertainty": ["test_uncertainty_intervals_around_the_views_numbers"],
    "matcher_panel": ["test_matcher_panel_places_every_scenario_by_each_further_matcher"],
    "sensitivity": ["test_sensitivity_compares_each_matchers_conclusions"],
    "position_bias": ["test_position_bias_flags_a_matcher_that_favours_the_first_shown_answer"],
}


def test_every_registered_stage_has_unit_tests():
    registered = {s.name for s in all_stages()}
    missing = sorted(registered - set(COVERAGE))
    assert not missing, f"stages without a unit test in {__name__}: {missing}. Add tests and list them in COVERAGE."
    assert not sorted(set(COVERAGE) - registered), "COVERAGE names stages that are no longer registered"
    for stage, tests in COVERAGE.items():
        assert tests, stage
        for t in tests:
            assert t.startswith("test_") and callable(globals().get(t)), f"{stage}: no test function {t}"
