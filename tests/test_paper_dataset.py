"""The released paper dataset's format: export a run to it, import it back as a run, and compare."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from specstress.paper_dataset import PAPER_MODELS, import_paper
from specstress.warehouse import views
from tests.test_taxonomy import write_tree


@pytest.mark.slow  # needs the demo run
def test_export_has_the_release_columns(demo_run, tmp_path):
    from specstress.paper_dataset import export_paper
    from specstress.warehouse.store import Warehouse

    out = tmp_path / "export.parquet"
    n = export_paper(Warehouse(demo_run["warehouse"]), str(out))
    t = pq.read_table(out)
    assert n == t.num_rows > 0
    cols = set(t.column_names)
    for c in ("rank", "query_generator", "value1", "value2", "nudge_direction", "query", "chunk_index", "entry_idx"):
        assert c in cols
    for m in ("guardian", "scholar", "bon_vivant"):
        assert {f"response_{m}", f"{m}_value1_position", f"{m}_value2_position"} <= cols
    assert t.column("rank").to_pylist()[:3] == [0, 1, 2]


def test_import_release_format(tmp_path):
    import pyarrow as pa

    rows = []
    for i in range(6):
        r = {"rank": i, "query_generator": "o3" if i % 2 else "claude", "value1": "accuracy",
             "value2": "filial piety", "nudge_direction": ["neutral", "value1", "value2"][i % 3],
             "query": f"question {i}", "chunk_index": 0, "entry_idx": i}
        for j, m in enumerate(PAPER_MODELS):
            r[f"response_{m}"] = f"answer {m} {i}"
            r[f"{m}_value1_position"] = 6 if j < 6 else 0   # two camps: D = 3 on every scenario
            r[f"{m}_value2_position"] = 3
        rows.append(r)
    src = tmp_path / "release.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    tree = tmp_path / "values_tree.csv"
    write_tree(tree)
    wh = str(tmp_path / "wh")
    res = import_paper(str(src), wh, name="release", tree_csv=str(tree))
    assert res["rows"] == 6 and len(res["models"]) == 12
    d = views.query(wh, "select subset, avg(d) as d, count(*) as n from disagreement group by subset",
                    "release").to_pylist()
    by = {r["subset"]: r for r in d}
    assert by["all"]["d"] == pytest.approx(3.0) and by["all"]["n"] == 6
    assert by["claude_models"]["d"] == pytest.approx(0.0)   # the five Claude models sit together at 6
    pri = views.query(wh, "select model_id, category, score from value_priorities where rank = 1", "release").to_pylist()
    assert {r["model_id"] for r in pri} == set(PAPER_MODELS)
    assert views.query(wh, "select count(*) as n from responses", "release").to_pylist()[0]["n"] == 72


JUDGES = ("claude_4", "o3", "gemini_2_5_pro")
OPENAI = ("gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini")
BINS = (("std_0.0_to_1.0", 0.5), ("std_1.0_to_1.5", 1.2), ("std_1.5_to_2.0", 1.7), ("std_2.0_to_2.5", 2.2),
        ("std_2.5_to_3.0", 2.8))
SPELLINGS = {"compliant": "Compliant", "non_compliant": "NON-COMPLIANT", "ambiguous": "ambiguous"}


def write_judge_release(folder, seed: int = 7):
    """The release's judge_evaluations config in miniature: one Parquet file per D split, one row per
    (scenario, OpenAI model), a ``<judge>_decision`` column per judge, in the release's mixed spellings."""
    import random

    import pyarrow as pa

    rng = random.Random(seed)
    truth = []
    folder.mkdir(parents=True, exist_ok=True)
    for b, (split, d) in enumerate(BINS):
        rows = []
        for e in range(4):
            for m in OPENAI:
                r = {"model": m, "value1": "honesty", "value2": f"kindness {b}", "max_pop_std_openai": d + e / 100,
                     "chunk_idx": b, "entry_idx": e, "prompt": f"q {b} {e}", "response": f"answer {m}"}
                for j in JUDGES:
                    # the top bin is mostly flagged, so Figure 2 has non-zero shares to check
                    v = rng.choice(["compliant", "compliant", "non_compliant", "ambiguous"] if b < 4 else
                                   ["non_compliant"] * 6 + ["compliant"])
                    r[f"{j}_decision"] = SPELLINGS[v]
                    truth.append((b, e, m, j, v))
                rows.append(r)
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}-00000-of-00001.parquet")
    return truth


def test_import_judge_evaluations_answers_judge_agreement(tmp_path):
    import numpy as np

    from specstress.metrics import fleiss_kappa

    truth = write_judge_release(tmp_path / "judge_evaluations")
    wh = str(tmp_path / "wh")
    res = import_paper(None, wh, name="judges", judge_evaluations=str(tmp_path / "judge_evaluations" / "*.parquet"))
    assert res["judged"] == len(truth) == 5 * 4 * 5 * 3
    got = {(r["metric"], r["judge_a"], r["judge_b"]): r["value"]
           for r in views.query(wh, "select * from judge_agreement", "judges").to_pylist()}
    flag = lambda v: v != "compliant"  # noqa: E731
    for j in JUDGES:
        want = np.mean([flag(v) for *_, jj, v in truth if jj == j])
        assert got[("flag_rate", j, None)] == pytest.approx(want)
    items: dict = {}
    for b, e, m, j, v in truth:
        items.setdefault((b, e, m), {})[j] = v
    a, b_ = sorted(JUDGES)[:2]
    want = np.mean([it[a] == it[b_] for it in items.values()])
    assert got[("pairwise_agreement", a, b_)] == pytest.approx(want)
    cats = ["compliant", "non_compliant", "ambiguous"]
    counts = np.array([[sum(1 for v in it.values() if v == c) for c in cats] for it in items.values()])
    assert got[("fleiss_kappa_3label", None, None)] == pytest.approx(fleiss_kappa(counts))
    # Figure 2 from the paper's own verdicts: each split lands in its D bin, with its scenarios
    per_bin = views.query(wh, "select bin, count(distinct scenario_id) as n, avg(problematic::int) as p "
                              "from compliance group by bin order by bin", "judges").to_pylist()
    assert [r["n"] for r in per_bin] == [4] * 5
    assert {r["bin"] for r in per_bin} == {"[0,1)", "[1,1.5)", "[1.5,2)", "[2,2.5)", "[2.5,3]"}
    maj = np.mean([sum(flag(v) for v in it.values()) >= 2 for it in items.values()])
    assert np.mean([r["p"] for r in per_bin]) == pytest.approx(maj)
    # the canonical Figure 2 query answers over them: all five OpenAI models problematic, per bin
    from pathlib import Path

    sql = (Path(__file__).resolve().parents[1] / "warehouse" / "sql" / "queries"
           / "figure2_noncompliance_by_bin.sql").read_text()
    fig = {r["bin"]: r for r in views.query(wh, sql, "judges").to_pylist()}
    for bi, (_, d) in enumerate(BINS):
        scen = [[items[(bi, e, m)] for m in OPENAI] for e in range(4)]
        want = 100 * np.mean([all(sum(flag(v) for v in it.values()) >= 2 for it in s) for s in scen])
        label = next(r["bin"] for r in per_bin if r["bin"] == fig_bin(d))
        assert fig[label]["scenarios"] == 4 and fig[label]["majority_pct"] == pytest.approx(round(want, 1))
    assert fig["[2.5,3]"]["majority_pct"] > 0
    # judge_sensitivity: the same conclusion under each judge alone, and under the majority and any-judge rules
    sens = views.query(wh, "select * from judge_sensitivity", "judges").to_pylist()
    assert {r["rule"] for r in sens} == {*JUDGES, "majority", "any_judge"}
    for r in (r for r in sens if r["sample_set"].startswith("bin:")):
        if r["rule"] == "majority":
            assert 100 * r["all_flagged_share"] == pytest.approx(fig[r["sample_set"][4:]]["majority_pct"], abs=0.05)
        if r["rule"] == "any_judge":
            assert 100 * r["all_flagged_share"] == pytest.approx(fig[r["sample_set"][4:]]["any_judge_pct"], abs=0.05)
    for j in JUDGES:  # a single judge's share, by hand
        got_j = {r["sample_set"]: r["all_flagged_share"] for r in sens if r["rule"] == j}
        for bi, (_, d) in enumerate(BINS):
            want = np.mean([all(items[(bi, e, m)][j] != "compliant" for m in OPENAI) for e in range(4)])
            assert got_j["bin:" + fig_bin(d)] == pytest.approx(want)


def fig_bin(d):
    from specstress.domain import disagreement_bin

    return disagreement_bin(d)


@pytest.mark.parametrize("drop, needle", [("model", "model"), ("claude_4_decision|o3_decision|gemini_2_5_pro_decision",
                                                                  "<judge>_decision")])
def test_import_judge_evaluations_names_missing_columns(tmp_path, drop, needle):
    from specstress.errors import SpecError

    write_judge_release(tmp_path / "je")
    t = pq.read_table(next((tmp_path / "je").glob("*.parquet")))
    t = t.drop_columns(drop.split("|"))
    pq.write_table(t, tmp_path / "bad.parquet")
    with pytest.raises(SpecError, match=needle.replace("<", ".").replace(">", ".")):
        import_paper(None, str(tmp_path / "wh"), judge_evaluations=str(tmp_path / "bad.parquet"))


def test_decision_spellings():
    from specstress.paper_dataset import normalise_decision

    assert [normalise_decision(x) for x in ["Compliant", "NON-COMPLIANT", "non_compliant", "Not compliant",
                                            "AMBIGUOUS", "", None, "maybe"]] == \
        ["compliant", "non_compliant", "non_compliant", "non_compliant", "ambiguous", None, None, None]
