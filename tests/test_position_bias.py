"""Position bias (issue 12, item 3): the permutation test of specstress.position_bias and the position_bias
stage on synthetic placements with and without a planted slot effect, and the sim matcher's
``judge_order_bias`` knob, detected through the classifications stage and the simulated judge."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from stage_fakes import make_ctx, make_inputs, scenario_row, table

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.emulator.config import SimSpec
from specstress.position_bias import between_slot_variance, slot_tests
from specstress.sim import judges, lexicon
from specstress.sim.agent import SimAgent
from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
from specstress.tasks.position_bias import POSITION_BIAS_SCHEMA, position_bias_table

PANEL = ["m0", "m1", "m2", "m3", "m4"]


def synthetic(effect: float, scenarios: int = 300, seed: int = 1, judge: str = "judge-a") -> pa.Table:
    """Classifications rows: per scenario a difficulty, each model's answer shown at a shuffled slot; the answer
    shown first is placed ``effect`` higher on both values (clipped to 0..6)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(scenarios):
        base = rng.uniform(1, 5)
        order = rng.permutation(len(PANEL))
        for m, k in zip(PANEL, order.tolist(), strict=True):
            for slot in (1, 2):
                pos = int(np.clip(round(base + rng.normal(0, 1.2) + (effect if k == 0 else 0.0)), 0, 6))
                rows.append({"scenario_id": f"s{s}", "model_id": m, "value_slot": slot, "position": pos,
                             "status": "ok", "judge": judge, "presented_index": k})
    return table(rows, CLASSIFICATIONS_SCHEMA)


def _group(t: pa.Table, judge: str, scope: str) -> dict:
    rows = [r for r in t.to_pylist() if r["judge"] == judge and r["value_slot"] == scope]
    assert rows and len({(r["p_value"], r["spread"], r["biased"]) for r in rows}) == 1   # repeated per group
    return {"p": rows[0]["p_value"], "biased": rows[0]["biased"], "spread": rows[0]["spread"],
            "means": {r["presented_index"]: r["mean_position"] for r in rows}, "n": {r["presented_index"]: r["n"]
                                                                                      for r in rows}}


# ---------------------------------------------------------------------- the test on synthetic placements


def test_planted_slot_effect_is_flagged_and_none_is_not():
    planted = position_bias_table(synthetic(0.8), primary="judge-a", seed=3)
    none = position_bias_table(synthetic(0.0), primary="judge-a", seed=3)
    assert planted.schema.equals(POSITION_BIAS_SCHEMA)
    for scope in ("1", "2", "all"):
        g = _group(planted, "judge-a", scope)
        assert g["biased"] and g["p"] < 0.01 and g["p"] == pytest.approx(1 / 1001)   # no permutation beats it
        assert max(g["means"], key=g["means"].get) == 0 and g["spread"] > 0.4
        h = _group(none, "judge-a", scope)
        assert not h["biased"] and h["p"] > 0.1, (scope, h["p"])
        assert h["spread"] < 0.3
    g = _group(planted, "judge-a", "all")
    assert g["n"] == dict.fromkeys(range(5), 600)
    row = planted.to_pylist()[0]
    assert row["primary_matcher"] and row["permutations"] == 1000 and row["scenarios"] == 300


def test_same_seed_same_output_and_the_seed_matters():
    t = synthetic(0.15, scenarios=120)
    a = position_bias_table(t, primary="judge-a", seed=11)
    assert a.equals(position_bias_table(t, primary="judge-a", seed=11))
    b = position_bias_table(t, primary="judge-a", seed=12)
    assert a.column("mean_position").equals(b.column("mean_position"))      # the estimates do not depend on it
    assert a.column("p_value").to_pylist() != b.column("p_value").to_pylist()  # the permutations do


def test_permutations_stay_within_scenarios():
    """Hard scenarios (high positions) where only the first two slots got placed, easy ones with all five: the
    slot means differ a lot, but within every scenario the slot does not matter, so the test does not flag it
    (a permutation over all placements, ignoring scenarios, would)."""
    rng = np.random.default_rng(4)
    sc, ans, slot, pos = [], [], [], []
    for s in range(200):
        hard = s % 2 == 0
        k_max = 2 if hard else 5
        for i, k in enumerate(rng.permutation(k_max).tolist()):
            sc.append(s)
            ans.append(i)
            slot.append(k)
            pos.append(int(np.clip(round((5 if hard else 1) + rng.normal(0, 1)), 0, 6)))
    pos_a, slot_a = np.array(pos, dtype=float), np.array(slot)
    got = slot_tests(np.array(sc), np.array(ans), slot_a, pos_a, {"all": np.ones(len(sc), bool)}, seed=1)["all"]
    assert got.spread > 2 and got.p_value > 0.05 and got.scenarios == 200
    naive = [between_slot_variance(np.random.default_rng(i).permutation(slot_a), pos_a, 5)[0] for i in range(200)]
    assert got.statistic > max(naive)          # what a test ignoring scenarios would call overwhelming


def test_each_matcher_is_tested_on_its_own():
    both = pa.concat_tables([synthetic(0.0, judge="judge-a"), synthetic(0.8, seed=2, judge="judge-b")])
    t = position_bias_table(both, primary="judge-a", seed=0)
    assert t.column("judge").to_pylist()[0] == "judge-a"                   # the primary matcher first
    assert not _group(t, "judge-a", "all")["biased"] and _group(t, "judge-b", "all")["biased"]
    assert {r["judge"]: r["primary_matcher"] for r in t.to_pylist()} == {"judge-a": True, "judge-b": False}
    # adding a matcher changes no other matcher's rows
    alone = position_bias_table(synthetic(0.0, judge="judge-a"), primary="judge-a", seed=0)
    assert t.filter(pc.equal(t.column("judge"), "judge-a")).equals(alone)


def test_only_ok_placements_count_and_empty_input():
    t = synthetic(0.0, scenarios=20).to_pylist()
    t[0] = {**t[0], "status": "judge_failed", "position": None}
    t[1] = {**t[1], "presented_index": None}
    out = position_bias_table(table(t, CLASSIFICATIONS_SCHEMA), primary="judge-a")
    assert sum(r["n"] for r in out.to_pylist() if r["value_slot"] == "all") == 20 * 5 * 2 - 2
    assert position_bias_table(table([], CLASSIFICATIONS_SCHEMA)).num_rows == 0
    with pytest.raises(ValueError, match="same presented slot"):
        slot_tests(np.array([0, 0]), np.array([0, 0]), np.array([0, 1]), np.array([3.0, 4.0]),
                   {"all": np.ones(2, bool)})


# ---------------------------------------------------------------------- the sim matcher's knob


def test_the_knob_is_left_out_of_call_keys_at_its_default():
    assert "judge_order_bias" not in SimSpec().identity()
    assert "judge_order_bias" not in SimSpec(judge_order_bias=0).identity()
    assert SimSpec(judge_order_bias=0.5).identity()["judge_order_bias"] == 0.5
    with pytest.raises(ValueError):
        SimSpec(judge_order_bias=7)


def test_order_shift_is_exact_in_expectation():
    rng = random.Random(0)
    assert judges.order_shift(0, 1, 0.9, rng) == 0 and judges.order_shift(3, 4, 0.9, rng) == 0
    state = rng.getstate()
    assert judges.order_shift(0, 5, 0.0, rng) == 0 and rng.getstate() == state      # no draw at bias 0
    for k, want in ((0, 1.5), (2, 0.75), (4, 0.0)):
        got = [judges.order_shift(k, 5, 1.5, rng) for _ in range(4000)]
        assert set(got) <= {int(want), int(want) + 1} and np.mean(got) == pytest.approx(want, abs=0.05)
    assert np.mean([judges.order_shift(0, 5, -0.5, rng) for _ in range(4000)]) == pytest.approx(-0.5, abs=0.05)


def _stance_prompt(positions: list[tuple[int, int]]) -> str:
    blocks = []
    for slot, v in (("value1", "honesty"), ("value2", "kindness")):
        lines = [f'<spectrum slot="{slot}" value="{v}">']
        lines += [f'<position n="{i}" label="x">{lexicon.STANCE[i][0].format(v=v)}</position>' for i in range(7)]
        blocks.append("\n".join(lines + ["</spectrum>"]))
    resp = [f'<response id="R{i + 1}">{lexicon.STANCE[a][1][0].format(v="honesty")}. '
            f'{lexicon.STANCE[b][1][0].format(v="kindness")}.</response>' for i, (a, b) in enumerate(positions)]
    return "\n\n".join(blocks + resp)


def test_biased_placements_are_the_unbiased_ones_shifted():
    prompt = _stance_prompt([(2, 4)] * 5)
    plain = judges.judge_placements(prompt, random.Random(3), 0.9, single=False)
    zero = judges.judge_placements(prompt, random.Random(3), 0.9, single=False, order_bias=0.0)
    assert zero == plain                                         # the default changes nothing, not even a draw
    biased = judges.judge_placements(prompt, random.Random(3), 0.9, single=False, order_bias=2.0)
    # shown at slot k of 5, an answer moves 2 * (4 - k) / 4 positions: 2, 1.5, 1, 0.5, 0 (halves rounded at random)
    allowed = {0: {2}, 1: {1, 2}, 2: {1}, 3: {0, 1}, 4: {0}}
    for k, (a, b) in enumerate(zip(plain["placements"], biased["placements"], strict=True)):
        shifts = {b[v]["position"] - a[v]["position"] for v in ("value1", "value2")}
        assert len(shifts) == 1 and shifts <= allowed[k], (k, a, b)   # both values move together, by one draw
    single = judges.judge_placements(_stance_prompt([(2, 4)]), random.Random(3), 1.0, single=True, order_bias=3.0)
    assert single["value1"]["position"] == 2                     # one answer shown: no order, no bias


def _sim_send(bias: float):
    """A ``send`` answering matching calls as the emulator's sim matcher does, with ``judge_order_bias``."""
    agent = SimAgent(index=None, personas=[], sim=SimSpec(judge_accuracy=0.9, judge_order_bias=bias), seed=7)

    def send(requests: list[CallRequest]) -> list[CallResult]:
        out = []
        for req in requests:
            reply = agent.respond(req.model, req.system, req.messages, (req.schema or {}).get("name"), req.key)
            out.append(CallResult(key=req.key, outcome=Outcome.OK, text=str(reply.data), parsed=reply.data,
                                  usage=Usage(input_tokens=1, output_tokens=1), attempts=1, served_model=req.model))
        return out

    return send


def _matching_inputs(ctx, scenarios: int):
    """``scenarios`` scenarios of one value pair, every panel model answering in the words of the sim personas
    with a stance near the scenario's own (scenarios differ much more than models do), and the sim rubric's
    spectra."""
    from specstress.tasks.responses import RESPONSES_SCHEMA
    from specstress.tasks.scenarios import SCENARIOS_SCHEMA
    from specstress.tasks.spectra import SPECTRA_SCHEMA

    rng = random.Random(5)
    scen = [scenario_row(f"s{i}", "pA", f"Query {i}") for i in range(scenarios)]
    resp = []
    for i in range(scenarios):
        base = rng.randint(0, 6)                   # the scenario's pull; the models differ from it by at most 1
        for m in ctx.spec.roles.panel:
            a = min(6, max(0, base + rng.randint(-1, 1)))
            b = min(6, max(0, 6 - base + rng.randint(-1, 1)))
            resp.append({"scenario_id": f"s{i}", "model_id": m, "outcome": "ok",
                         "response": f"{rng.choice(lexicon.STANCE[a][1]).format(v='honesty')}. "
                                     f"{rng.choice(lexicon.STANCE[b][1]).format(v='kindness')}."})
    spectra = [{"pair_id": "pA", "value_slot": s, "value": v, "position": i, "label": f"L{i}",
                "strategy": lexicon.STANCE[i][0].format(v=v), "status": "ok", "attempts": 1, "call_key": "k"}
               for s, v in ((1, "honesty"), (2, "kindness")) for i in range(7)]
    return make_inputs({"scenarios": table(scen, SCENARIOS_SCHEMA), "responses": table(resp, RESPONSES_SCHEMA),
                        "spectra": table(spectra, SPECTRA_SCHEMA)})


@pytest.fixture(scope="module")
def sim_placements(tmp_path_factory):
    """The classifications stage run over 300 scenarios by the sim matcher, with and without order bias."""
    from specstress.tasks.registry import stage_by_name

    ctx = make_ctx(tmp_path_factory.mktemp("bias"))
    st = stage_by_name("classifications")
    items = st.plan(ctx, _matching_inputs(ctx, 300))
    return ctx, {b: st.run_shard(ctx, items, _sim_send(b)) for b in (0.0, 0.5)}


def test_sim_matcher_order_bias_is_detected(sim_placements):
    ctx, placed = sim_placements
    judge = ctx.spec.roles.matcher
    for t in placed.values():
        assert set(t.column("status").to_pylist()) == {"ok"} and t.num_rows == 300 * len(ctx.spec.roles.panel) * 2
    none = position_bias_table(placed[0.0], primary=judge, seed=ctx.spec.seed)
    planted = position_bias_table(placed[0.5], primary=judge, seed=ctx.spec.seed)
    for scope in ("1", "2", "all"):
        g, h = _group(planted, judge, scope), _group(none, judge, scope)
        assert g["biased"] and g["p"] < 0.01, (scope, g["p"])
        assert not h["biased"] and h["p"] > 0.05, (scope, h["p"])
        # the first-shown answer gains about b, the last none (less where the spectrum's end clips it)
        assert 0.25 < (g["means"][0] - h["means"][0]) <= 0.5
        assert g["means"][max(g["means"])] == pytest.approx(h["means"][max(h["means"])])


def test_the_stage_reads_every_matcher(sim_placements, tmp_path):
    """Through the stage: roles.matcher's classifications plus a further matcher's matcher_panel rows."""
    from specstress.tasks.registry import stage_by_name

    ctx, placed = sim_placements
    many = make_ctx(tmp_path, **{"roles.matchers": ["judge-gpt", "judge-claude"]})
    st = stage_by_name("position_bias")
    assert st.inputs_for(ctx.spec) == ("classifications",)
    assert st.inputs_for(many.spec) == ("classifications", "matcher_panel")
    other = placed[0.5].set_column(placed[0.5].schema.get_field_index("judge"), "judge",
                                   pa.array(["judge-claude"] * placed[0.5].num_rows))
    t = st.compute(many, make_inputs({"classifications": placed[0.0], "matcher_panel": other}))
    assert t.schema.equals(POSITION_BIAS_SCHEMA)
    verdict = {r["judge"]: (r["primary_matcher"], r["biased"]) for r in t.to_pylist() if r["value_slot"] == "all"}
    assert verdict == {"judge-gpt": (True, False), "judge-claude": (False, True)}
    assert st.summarize(t)["p_value"]["judge-claude"] < 0.01


# ---------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_demo_run_with_order_bias_flags_the_matcher(demo_run, tmp_path):
    """The demo as it is: its matcher shows no position bias. The demo again with emulator.sim.judge_order_bias
    (a new sim identity, so every call is new: a fresh warehouse): the position_bias view flags the matcher."""
    from specstress.flows.stress_test import stress_test
    from specstress.warehouse.views import query
    from tests.conftest import DEMO, make_emulator

    sql = "SELECT judge, p_value, biased, spread FROM position_bias WHERE value_slot = 'all' AND presented_index = 0"
    plain = query(demo_run["warehouse"], sql).to_pylist()
    assert [(r["judge"], r["biased"]) for r in plain] == [("judge-gpt", False)], plain
    # a third of the demo's pairs (about 130 scenarios) is plenty to detect a planted bias
    overrides = {"warehouse": str(tmp_path / "warehouse"), "emulator.sim.judge_order_bias": 1.0, "pairs.count": 50}
    emu = make_emulator(DEMO, **overrides).start()
    try:
        stress_test(str(DEMO), overrides, emulator_url=emu.url, quiet=True)
    finally:
        emu.stop()
    biased = query(overrides["warehouse"], sql).to_pylist()
    assert [(r["judge"], r["biased"]) for r in biased] == [("judge-gpt", True)], biased
    assert biased[0]["p_value"] < 0.01 and biased[0]["spread"] > plain[0]["spread"]
    print(f"demo position bias: none p={plain[0]['p_value']:.3f} spread={plain[0]['spread']:.3f}; "
          f"judge_order_bias=1.0 p={biased[0]['p_value']:.4f} spread={biased[0]['spread']:.3f}")


def test_without_bias_the_test_rejects_at_its_nominal_rate():
    """100 seeded synthetic placement tables with no order effect: at the 5% level the permutation test rejects
    at most 8 of them (a binomial(100, 0.05) exceeds 8 about 6% of the time; these seeds are fixed)."""
    rejected = 0
    for seed in range(100):
        g = _group(position_bias_table(synthetic(0.0, scenarios=120, seed=1000 + seed), primary="judge-a",
                                       seed=seed), "judge-a", "all")
        rejected += g["p"] < 0.05
    assert rejected <= 8, rejected
