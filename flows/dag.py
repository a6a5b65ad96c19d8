"""The pipeline's DAG: every stage in order, and the content-addressed id of each artefact.

An artefact's id hashes the stage name and version, the part of the run spec the stage reads,
its prompt templates' hashes and its input artefacts' ids. Ids are known before anything runs,
so a rerun finds finished stages by id, and changing only the judge recomputes classification and
what follows, and nothing before it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from specstress.hashing import content_hash
from specstress.runspec import RunSpec
from tasks.analytics import DisagreementStage, OutliersStage, PositionGridStage, PrioritiesStage
from tasks.base import Stage
from tasks.compliance import ComplianceStage
from tasks.diversity import DiversityStage
from tasks.embeddings import EmbeddingsStage
from tasks.high_disagreement import HighDisagreementStage
from tasks.matching import MatchingStage
from tasks.pairs import PairsStage
from tasks.priority_freeform import PriorityFreeformStage
from tasks.refusals import RefusalsStage
from tasks.responses import ResponsesStage
from tasks.scenarios import ScenariosStage
from tasks.spectra import SpectraStage
from tasks.taxonomy import TaxonomyStage
from tasks.topics import TopicsStage


@lru_cache(maxsize=1)
def all_stages() -> tuple[Stage, ...]:
    return (
        TaxonomyStage(), PairsStage(), ScenariosStage(), EmbeddingsStage(), DiversityStage(), ResponsesStage(),
        SpectraStage(), MatchingStage(), PositionGridStage(), DisagreementStage(), HighDisagreementStage(), PrioritiesStage(),
        OutliersStage(), TopicsStage(), RefusalsStage(), PriorityFreeformStage(), ComplianceStage(),
    )


def stage_by_name(name: str) -> Stage:
    for s in all_stages():
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in all_stages())}")


def active_stages(spec: RunSpec) -> list[Stage]:
    return [s for s in all_stages() if s.enabled(spec)]


def template_hashes_for(stage: Stage, spec: RunSpec) -> dict[str, str]:
    from specstress.prompts import load_template

    names = stage.templates_for(spec) if hasattr(stage, "templates_for") else stage.templates
    return {n: load_template(n).hash for n in names}


def artefact_ids(spec: RunSpec) -> dict[str, str]:
    """stage name -> artefact id, for every active stage, in DAG order."""
    ids: dict[str, str] = {}
    for st in active_stages(spec):
        ids[st.name] = artefact_id(st, spec, ids)
    return ids


def input_ids(stage: Stage, ids: dict[str, str], spec: RunSpec) -> dict[str, str]:
    return {name: ids[name] for name in stage.inputs_for(spec) if name in ids}


def artefact_id(stage: Stage, spec: RunSpec, ids: dict[str, str]) -> str:
    missing = [n for n in stage.inputs_for(spec) if n not in ids]
    if missing:
        raise RuntimeError(f"stage {stage.name} needs {missing}, which are not active in this run spec")
    ident: dict[str, Any] = {
        "stage": stage.name,
        "version": stage.version,
        "config": stage.config(spec),
        "templates": template_hashes_for(stage, spec),
        "inputs": input_ids(stage, ids, spec),
    }
    return stage.name[:4] + "-" + content_hash(ident)[:24]
