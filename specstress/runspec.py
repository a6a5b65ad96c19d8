"""The run spec: one declarative YAML file that says what to stress-test, with whom, for how much.

``load_run_spec(path)`` parses and validates it. Every problem becomes one :class:`SpecError`
naming the file, the line, the field and the fix, before anything is sent to any provider.
Relative paths inside a spec resolve against the spec file's own folder.

Core knows each model's provider and base URL, and nothing about the simulator: the ``emulator:``
section belongs to the emulator plugin, which registers its schema here (:func:`register_section`)
and is loaded by name when a spec is, so that its problems are reported the same way.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from specstress.errors import SpecError
from specstress.hashing import content_hash

PROVIDERS = ("openai", "anthropic", "google", "xai", "openai_compatible", "sim")
EMULATOR = "emulator"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _identifier(v: str, what: str) -> str:
    if not _ID.match(v):
        raise ValueError(f"{what} use letters, digits, '_', '-' and '.', starting with a letter or digit")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- models


class ModelParams(_Strict):
    """Sampling settings sent with every call to this model (part of the call key)."""

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(gt=0, le=200_000)] = 1024
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    thinking_budget: Annotated[int, Field(ge=0)] | None = None
    seed: int | None = None


class Limits(_Strict):
    """Concurrency and rate limits per (provider, model)."""

    max_in_flight: Annotated[int, Field(ge=1, le=4096)] = 32
    min_in_flight: Annotated[int, Field(ge=1)] = 1
    rpm: Annotated[float, Field(gt=0)] | None = None
    tpm: Annotated[float, Field(gt=0)] | None = None


class Price(_Strict):
    """Dollars per million tokens."""

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cached_input: Annotated[float, Field(ge=0)] | None = None
    reasoning: Annotated[float, Field(ge=0)] | None = None


class ModelEntry(_Strict):
    """One model the run may call, under a short id used everywhere else in the spec."""

    id: str
    provider: Literal["openai", "anthropic", "google", "xai", "openai_compatible", "sim"]
    model: str
    base_url: str | None = None
    api: Literal["chat", "responses"] | None = None
    key_env: str | None = None
    params: ModelParams = Field(default_factory=ModelParams)
    limits: Limits = Field(default_factory=Limits)
    price_as: str | None = None
    price: Price | None = None

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        return _identifier(v, "model ids")

    @field_validator("base_url")
    @classmethod
    def _url_ok(cls, v: str | None) -> str | None:
        if v is None or v == EMULATOR:
            return v
        if not re.match(r"^https?://", v):
            raise ValueError("base_url must start with http:// or https://, or be the word 'emulator'")
        return v

    @model_validator(mode="after")
    def _anthropic_sampling(self) -> ModelEntry:
        if self.provider == "anthropic":
            for name in ("temperature", "top_p"):
                if getattr(self.params, name) is not None:
                    raise FieldError(("params", name), f"anthropic models take no {name} (Anthropic API version "
                                         "2026-10-21 rejects sampling parameters)",
                                         f"remove params.{name}; use thinking_budget or reasoning_effort instead")
        return self

    @property
    def on_emulator(self) -> bool:
        return self.base_url == EMULATOR or self.provider == "sim"

    @property
    def endpoint(self) -> str:
        """Coarse endpoint identity (see ``specstress.context.endpoint_identity`` for the one in keys)."""
        if self.on_emulator:
            return EMULATOR
        return self.base_url or "default"


# --------------------------------------------------------------------------- roles


class GeneratorRole(_Strict):
    model: str
    share: Annotated[float, Field(gt=0)] = 1.0


class EmbedderSpec(_Strict):
    """Where scenario embeddings come from. ``local`` needs no network and no download."""

    kind: Literal["local", "model"] = "local"
    model: str | None = None
    dimensions: Annotated[int, Field(ge=16, le=8192)] = 768
    batch_size: Annotated[int, Field(ge=1, le=2048)] = 64

    @model_validator(mode="after")
    def _model_needed(self) -> EmbedderSpec:
        if self.kind == "model" and not self.model:
            raise ValueError("embedder kind 'model' needs `model:` (a model id from `models`)")
        return self


class Roles(_Strict):
    """Which model plays which part. Every role can be swapped to measure circularity."""

    generators: Annotated[list[GeneratorRole], Field(min_length=1)]
    panel: Annotated[list[str], Field(min_length=2)]
    rubric: str
    #: the matcher whose placements the analyses use (default: the first of ``matchers``)
    matcher: str = ""
    #: every matcher that places every scenario; the others' placements feed matcher_agreement and sensitivity
    matchers: list[str] = Field(default_factory=list)
    topic_tagger: str | None = None
    refusal_classifier: str | None = None
    priority_describer: str | None = None
    compliance_judges: list[str] = Field(default_factory=list)
    taxonomy_expander: str | None = None
    embedder: EmbedderSpec = Field(default_factory=EmbedderSpec)

    @model_validator(mode="after")
    def _primary_matcher(self) -> Roles:
        if not self.matcher:
            if not self.matchers:
                raise FieldError(("matcher",), "no matcher is named",
                                 "set roles.matcher (or roles.matchers: [...]) to the model that places responses")
            self.matcher = self.matchers[0]
        return self

    def models_of(self, role: str) -> list[str]:
        """The model ids playing ``role`` (a field of this section: ``matcher``, ``panel``, ...)."""
        v = getattr(self, role)
        if role == "embedder":
            return [v.model] if v.model else []
        if role == "generators":
            return [g.model for g in v]
        if isinstance(v, list):
            return list(v)
        return [v] if v else []

    def extra_matchers(self) -> list[str]:
        """The matchers besides ``matcher``, in the order given."""
        return [m for m in dict.fromkeys(self.matchers) if m != self.matcher]


# --------------------------------------------------------------------------- stages


class TaxonomySpec(_Strict):
    """``file``: our YAML format. ``values_in_the_wild``: the public CSVs (local path or hf://).
    ``expand``: grow the file taxonomy with ``roles.taxonomy_expander``."""

    source: Literal["file", "values_in_the_wild", "expand"] = "file"
    path: str = "../taxonomy/seed.yaml"
    tree_csv: str | None = None
    per_category: Annotated[int, Field(ge=1, le=200)] = 5
    dedup_threshold: Annotated[float, Field(gt=0, le=2)] = 0.35


class PairsSpec(_Strict):
    count: Annotated[int, Field(ge=1, le=10_000_000)]
    categories: list[str] | None = None


class ScenariosSpec(_Strict):
    biased: bool = True


class DiversitySpec(_Strict):
    enabled: bool = True
    threshold: Annotated[float, Field(gt=0, le=2)] = 0.4
    weighted_threshold: Annotated[float, Field(gt=0, le=2)] = 0.8
    method: Literal["auto", "farthest_first", "rnet"] = "auto"


class MatchingSpec(_Strict):
    mode: Literal["per_scenario", "per_response"] = "per_scenario"
    shuffle: bool = True
    max_reasks: Annotated[int, Field(ge=0, le=5)] = 1


class SpectraSpec(_Strict):
    max_reasks: Annotated[int, Field(ge=0, le=5)] = 2


class DisagreementSpec(_Strict):
    high: Annotated[float, Field(ge=0, le=3)] = 1.5


class ComplianceSpec(_Strict):
    enabled: bool = False
    model_spec: str | None = None
    group: list[str] = Field(default_factory=list)
    subset: str | None = None
    per_bin: Annotated[int, Field(ge=0)] = 20
    random_sample: Annotated[int, Field(ge=0)] = 20
    max_spec_chars: Annotated[int, Field(ge=1000)] | None = None

    @model_validator(mode="after")
    def _needs(self) -> ComplianceSpec:
        if self.enabled and not self.model_spec:
            raise ValueError("compliance is enabled but `model_spec:` (path to a model-spec markdown) is missing")
        return self


class AnalysisScope(_Strict):
    enabled: bool = True
    scope: Literal["all", "high_disagreement"] = "all"


class OutliersSpec(_Strict):
    min_gap: Annotated[int, Field(ge=1, le=6)] = 4
    min_share: Annotated[float, Field(gt=0, le=1)] = 9 / 11


class ShardSpec(_Strict):
    size: Annotated[int, Field(ge=1, le=5000)] = 500
    task_retries: Annotated[int, Field(ge=0, le=20)] = 3
    retry_delay_s: Annotated[float, Field(ge=0)] = 2.0


class RetrySpec(_Strict):
    """Our one retry layer (the SDKs' own retries are off)."""

    max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    max_call_seconds: Annotated[float, Field(gt=0)] = 600.0
    request_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    backoff_base_s: Annotated[float, Field(ge=0)] = 1.0
    backoff_max_s: Annotated[float, Field(ge=0)] = 60.0


class TaskRunnerSpec(_Strict):
    kind: Literal["threads", "dask"] = "threads"
    max_workers: Annotated[int, Field(ge=1, le=64)] = 4
    dask_workers: Annotated[int, Field(ge=1, le=64)] = 2
    dask_address: str | None = None


#: providers with a native batch API (half price, results within 24 hours)
BATCH_PROVIDERS = frozenset({"openai", "anthropic", "google"})


class BatchSpec(_Strict):
    """Which calls go through the providers' batch APIs (about half price, results within 24 hours).

    A call is batched when ``mode`` is ``batch``, its model's provider has a batch API
    (:data:`BATCH_PROVIDERS`), its model is selected (``models`` or ``roles``; both empty selects every
    model) and its stage is selected (``stages``; empty selects every call stage). Everything else is sent
    at once, as in ``realtime`` mode.
    """

    mode: Literal["realtime", "batch"] = "realtime"
    models: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    stages: list[str] = Field(default_factory=list)
    #: seconds between two status checks of a pending batch
    poll_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    #: requests per submitted batch (OpenAI accepts 50,000, Anthropic 100,000)
    max_requests: Annotated[int, Field(ge=1, le=50_000)] = 10_000
    #: what happens to items a batch did not answer (expired, cancelled, errored): submit them again in a
    #: new batch (up to ``max_resubmits`` times, then realtime), or send them at once at realtime prices
    on_unfinished: Literal["resubmit", "realtime"] = "resubmit"
    max_resubmits: Annotated[int, Field(ge=0, le=10)] = 1
    #: a batch still pending after this many hours is cancelled and its unanswered items follow ``on_unfinished``
    max_wait_h: Annotated[float, Field(gt=0)] = 26.0


class ServiceSection(BaseModel):
    """A section of the spec owned by a provider plugin: ``emulator:``, owned by
    :mod:`specstress.emulator.config`.

    Core reads two generic facts of a service that runs beside a run, and nothing else: ``enabled``
    (the run starts it in-process) and ``url`` (where one runs already). Every other key belongs to
    the plugin, which registers a model for the section (:func:`register_section`); the whole
    section is validated against it when the spec is loaded, and plugin code reads it typed through
    :func:`section_config` (for the emulator, ``specstress.emulator.config.emulator_config``).
    """

    model_config = ConfigDict(extra="allow")

    enabled: bool = False
    url: str | None = None


class ReportSpec(_Strict):
    top_n: Annotated[int, Field(ge=1, le=500)] = 10


class UncertaintySpec(_Strict):
    """Bootstrap intervals on the headline numbers (the ``uncertainty`` and ``value_strengths`` stages)."""

    enabled: bool = True
    resamples: Annotated[int, Field(ge=10, le=100_000)] = 1000
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    #: what is resampled: scenarios, or value pairs with all their scenarios (a cluster bootstrap)
    unit: Literal["scenario", "pair"] = "scenario"


# --------------------------------------------------------------------------- the spec


class RunSpec(_Strict):
    """A whole stress test, declared."""

    name: str
    seed: int = 0
    description: str | None = None
    warehouse: str = "../../.specstress/warehouse"
    budget_usd: Annotated[float, Field(gt=0)]
    prices: str = "../prices.yaml"
    taxonomy: TaxonomySpec = Field(default_factory=TaxonomySpec)
    pairs: PairsSpec
    models: Annotated[list[ModelEntry], Field(min_length=1)]
    roles: Roles
    subsets: dict[str, list[str]] = Field(default_factory=dict)
    scenarios: ScenariosSpec = Field(default_factory=ScenariosSpec)
    diversity: DiversitySpec = Field(default_factory=DiversitySpec)
    spectra: SpectraSpec = Field(default_factory=SpectraSpec)
    matching: MatchingSpec = Field(default_factory=MatchingSpec)
    disagreement: DisagreementSpec = Field(default_factory=DisagreementSpec)
    compliance: ComplianceSpec = Field(default_factory=ComplianceSpec)
    refusals: AnalysisScope = Field(default_factory=AnalysisScope)
    topics: AnalysisScope = Field(default_factory=AnalysisScope)
    priorities: AnalysisScope = Field(default_factory=lambda: AnalysisScope(scope="high_disagreement"))
    outliers: OutliersSpec = Field(default_factory=OutliersSpec)
    shards: ShardSpec = Field(default_factory=ShardSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    #: the SDKs' HTTP transport: aiohttp (openai/anthropic DefaultAioHttpClient; google-genai uses aiohttp when it
    #: is installed) costs about half the CPU per call of httpx's; httpx is the SDKs' default
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    task_runner: TaskRunnerSpec = Field(default_factory=TaskRunnerSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    emulator: ServiceSection = Field(default_factory=ServiceSection)  # owned by the emulator plugin
    report: ReportSpec = Field(default_factory=ReportSpec)
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)

    # Set by load_run_spec; not part of the YAML.
    _source: Path | None = PrivateAttr(default=None)
    # Provider-owned sections as their plugins validated them: name -> (the section read, its config).
    _sections: dict[str, tuple[ServiceSection, BaseModel]] = PrivateAttr(default_factory=dict)
    # Set by load_run_spec when overrides were given: the spec file's own values (JSON), to name the run.
    _base: dict[str, Any] | None = PrivateAttr(default=None)
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def source_path(self) -> Path | None:
        return self._source

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _identifier(v, "the run name")

    @model_validator(mode="after")
    def _cross_references(self) -> RunSpec:
        ids = [m.id for m in self.models]
        seen: set[str] = set()
        for i, mid in enumerate(ids):
            if mid in seen:
                raise FieldError(("models", i, "id"), f"duplicate model id {mid!r}",
                                     "give every entry of `models` its own id")
            seen.add(mid)
        known = set(ids)

        def check(loc: tuple[Any, ...], mid: str | None) -> None:
            if mid is not None and mid not in known:
                close = difflib.get_close_matches(mid, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known ids: {', '.join(sorted(known))}"
                raise FieldError(loc, f"unknown model id {mid!r}", f"use an id declared under `models` ({hint})")

        r = self.roles
        for i, g in enumerate(r.generators):
            check(("roles", "generators", i, "model"), g.model)
        pseen: set[str] = set()
        for i, p in enumerate(r.panel):
            check(("roles", "panel", i), p)
            if p in pseen:
                raise FieldError(("roles", "panel", i), f"{p!r} is twice in the panel", "list each model once")
            pseen.add(p)
        for role in ("rubric", "matcher", "topic_tagger", "refusal_classifier", "priority_describer",
                     "taxonomy_expander"):
            check(("roles", role), getattr(r, role))
        for i, j in enumerate(r.compliance_judges):
            check(("roles", "compliance_judges", i), j)
        for i, j in enumerate(r.matchers):
            check(("roles", "matchers", i), j)
            if j in r.matchers[:i]:
                raise FieldError(("roles", "matchers", i), f"{j!r} is listed twice", "list each matcher once")
        if r.embedder.kind == "model":
            check(("roles", "embedder", "model"), r.embedder.model)
        for name, members in self.subsets.items():
            if name == "all":
                raise FieldError(("subsets", "all"), "'all' is the whole panel and cannot be redefined",
                                     "give this subset another name")
            if len(members) < 2:
                raise FieldError(("subsets", name), f"subset {name!r} has fewer than two models",
                                     "a disagreement subset needs at least two panel models")
            for i, m in enumerate(members):
                if m not in pseen:
                    raise FieldError(("subsets", name, i), f"{m!r} is not in roles.panel",
                                         "subsets are made of panel models")
                if m in members[:i]:
                    raise FieldError(("subsets", name, i), f"{m!r} is listed twice in subset {name!r}",
                                         "list each model of a subset once")
        for i, m in enumerate(self.compliance.group):
            if m not in pseen:
                raise FieldError(("compliance", "group", i), f"{m!r} is not in roles.panel",
                                     "the compliance group is made of panel models")
        if self.compliance.subset and self.compliance.subset not in self.all_subsets():
            raise FieldError(("compliance", "subset"), f"unknown subset {self.compliance.subset!r}",
                                 f"use one of: {', '.join(self.all_subsets())}")
        if self.compliance.enabled and not r.compliance_judges:
            raise FieldError(("roles", "compliance_judges"), "compliance is enabled but no judges are set",
                                 "list one or more model ids under roles.compliance_judges")
        if self.taxonomy.source == "expand" and not r.taxonomy_expander:
            raise FieldError(("roles", "taxonomy_expander"), "taxonomy source 'expand' needs an expander",
                                 "set roles.taxonomy_expander to a model id")
        for i, mid in enumerate(self.batch.models):
            check(("batch", "models", i), mid)
        for i, role in enumerate(self.batch.roles):
            if role not in Roles.model_fields:
                raise FieldError(("batch", "roles", i), f"unknown role {role!r}",
                                 f"use a field of `roles` ({', '.join(Roles.model_fields)})")
        uses_emulator = any(m.on_emulator for m in self.models)
        if uses_emulator and not (self.emulator.enabled or self.emulator.url):
            idx = next(i for i, m in enumerate(self.models) if m.on_emulator)
            raise FieldError(("models", idx, "base_url"), "this model is routed to the emulator, which is off",
                                 "set `emulator: {enabled: true}` or give the model a real base_url")
        return self

    # ------------------------------------------------------------------ helpers

    def model(self, model_id: str) -> ModelEntry:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)

    def batched(self, model_id: str, stage: str) -> bool:
        """Whether calls of ``stage`` to ``model_id`` go through the provider's batch API (see :class:`BatchSpec`)."""
        b = self.batch
        if b.mode != "batch" or (b.stages and stage not in b.stages):
            return False
        entry = self.model(model_id)
        if entry.provider not in BATCH_PROVIDERS:
            return False
        if not b.models and not b.roles:
            return True
        return model_id in b.models or any(model_id in self.roles.models_of(r) for r in b.roles)

    def all_subsets(self) -> dict[str, list[str]]:
        """Named model subsets; ``all`` (the whole panel) is always present."""
        subsets = {"all": list(self.roles.panel)}
        subsets.update(self.subsets)
        return subsets

    def resolve(self, rel: str) -> Path:
        """Resolve a path written in the spec against the spec file's folder."""
        if "://" in rel:
            return Path(rel)
        p = Path(rel).expanduser()
        if p.is_absolute():
            return p
        base = self.source_path.parent if self.source_path else Path.cwd()
        return (base / p).resolve()

    def warehouse_root(self) -> str:
        if "://" in self.warehouse and not self.warehouse.startswith("file://"):
            return self.warehouse
        w = self.warehouse[len("file://"):] if self.warehouse.startswith("file://") else self.warehouse
        return str(self.resolve(w))

    def spec_hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))

    @property
    def run_name(self) -> str:
        """The run's name: the spec's ``name``, plus a short hash of what the overrides changed in the
        effective spec (``demo`` for the plain demo, ``demo-3f2a1c`` with ``pairs.count=20``). The hash
        covers the changed values, not the whole spec, so a new spec field with a default (a code
        upgrade) does not rename a run. Overriding ``name`` itself names the run as given; overriding
        only :data:`EXECUTION_FIELDS` (where and how it runs, its budget) keeps the name."""
        if "name" in self._overrides or self._base is None:
            return self.name
        changed = {k: v for k, v in self.effective_overrides().items() if k.split(".")[0] not in EXECUTION_FIELDS}
        return f"{self.name}-{content_hash(changed)[:6]}" if changed else self.name

    def effective_overrides(self) -> dict[str, Any]:
        """Dotted key -> value of every field whose value differs from the spec file's (what
        ``--set`` or a deployment's ``overrides`` actually changed)."""
        if self._base is None:
            return {}
        return _diff(self._base, self.model_dump(mode="json"))


#: Fields that say where and how a run executes, not what it computes: overriding only these keeps
#: the run's name (and so its budget, which is counted per run name).
EXECUTION_FIELDS = ("warehouse", "budget_usd", "description", "task_runner", "shards", "retry")


def _diff(base: Any, new: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(base, dict) and isinstance(new, dict):
        out: dict[str, Any] = {}
        for k in sorted(set(base) | set(new), key=str):
            if base.get(k) != new.get(k):
                out.update(_diff(base.get(k), new.get(k), f"{prefix}{k}."))
        return out
    if isinstance(base, list) and isinstance(new, list) and len(base) == len(new):
        out = {}
        for i, (b, n) in enumerate(zip(base, new, strict=True)):
            if b != n:
                out.update(_diff(b, n, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): new}


class FieldError(ValueError):
    """A problem at a field, raised from a validator: ``loc`` is relative to the model validated
    (a provider-owned section's model may raise it too); the loader adds the file and line."""

    def __init__(self, loc: tuple[Any, ...], msg: str, fix: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.fix = fix


# --------------------------------------------------------------------------- provider-owned sections

# Provider plugins (modules) that own a section of the spec. Core never imports them: it loads
# them by name, the ``specstress.providers`` entry points first, then this built-in one (so a
# checkout whose entry points were not reinstalled still works).
PLUGIN_GROUP = "specstress.providers"
BUILTIN_PLUGINS = ("specstress.emulator.plugin",)

_SECTIONS: dict[str, type[BaseModel]] = {}


def register_section(name: str, model: type[BaseModel]) -> None:
    """Make ``model`` the schema of the provider-owned section ``name`` (called by the plugin that
    owns it, when it is imported). The loader validates the section against it, with
    ``context={"spec": spec}`` so that its validators can check it against the rest of the spec and
    raise :class:`FieldError` with a location inside the section."""
    field = RunSpec.model_fields.get(name)
    if field is None or field.annotation is not ServiceSection:
        raise ValueError(f"{name!r} is not a provider-owned section of the run spec")
    _SECTIONS[name] = model


@cache
def _load_plugins() -> None:
    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load()
    for name in BUILTIN_PLUGINS:
        importlib.import_module(name)


def section_config(spec: RunSpec, name: str) -> BaseModel:
    """The section ``name`` of ``spec`` as its plugin's model (validated once, then cached)."""
    raw = getattr(spec, name)
    cached = spec._sections.get(name)
    if cached is not None and cached[0] is raw:
        return cached[1]
    _load_plugins()
    model = _SECTIONS.get(name)
    if model is None:
        raise SpecError(f"{spec.source_path}: field `{name}`: no provider plugin owns this section. "
                        f"Fix: install the plugin that provides it (entry-point group {PLUGIN_GROUP!r}).")
    try:
        config = model.model_validate(raw.model_dump(mode="json"), context={"spec": spec})
    except ValidationError as exc:
        raise SpecError(_format_validation_error(spec.source_path or Path("run spec"), None, exc,
                                                 prefix=(name,), model=model)) from None
    spec._sections[name] = (raw, config)
    return config


def _validate_sections(spec: RunSpec, path: Path, root: yaml.Node | None, overrides: dict[str, Any] | None,
                       overrides_from: str = "--set") -> None:
    """Validate every provider-owned section with its plugin's model, and keep it normalised (the
    plugin's defaults filled in, so the spec's hash covers them)."""
    _load_plugins()
    for name, model in _SECTIONS.items():
        try:
            config = model.model_validate(getattr(spec, name).model_dump(mode="json"), context={"spec": spec})
        except ValidationError as exc:
            raise SpecError(_format_validation_error(path, root, exc, overrides, prefix=(name,), model=model,
                                                     overrides_from=overrides_from)) from None
        section = ServiceSection.model_validate(config.model_dump(mode="json"))
        setattr(spec, name, section)
        spec._sections[name] = (section, config)


# --------------------------------------------------------------------------- loading


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt = v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_FIXES = {
    "missing": "add this field",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write a string (quote it if YAML reads it as something else)",
    "list_type": "write a YAML list",
    "dict_type": "write a YAML mapping (key: value)",
    "model_type": "write a YAML mapping (key: value)",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "too_short": "add more entries",
}


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names allowed at the mapping that holds ``loc``'s last key."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        cur = _inner_model(ann)
        if cur is None:
            return []
    fields = getattr(cur, "model_fields", None) or {}
    return list(fields)


def _inner_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", ()) or ():
        m = _inner_model(a)
        if m is not None:
            return m
    return None


def _override_for(loc: tuple[Any, ...], overrides: dict[str, Any] | None) -> str | None:
    """The override key that set the field at ``loc`` (or the mapping holding it, or created its parent)."""
    full = ".".join(str(p) for p in loc)
    named = ".".join(str(p) for p in loc if not isinstance(p, int))
    for k in overrides or {}:
        for dotted in (full, named):
            if dotted and (dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".")):
                return k
    return None


def _format_validation_error(path: Path, root: yaml.Node | None, err: ValidationError,
                             overrides: dict[str, Any] | None = None, prefix: tuple[Any, ...] = (),
                             model: type[BaseModel] | None = None, overrides_from: str = "--set") -> str:
    """One line per problem (at most five): ``file:line: field `loc`: problem. Fix: fix.``, or
    ``override 'key' (from --set): field `loc`: ...`` when an override set that field.
    ``prefix`` locates a provider-owned section validated on its own with ``model``."""
    lines = []
    for e in err.errors()[:5]:
        loc = tuple(p for p in e["loc"] if p not in ("function-after",) and not str(p).startswith("function"))
        etype = e["type"]
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, FieldError):
            loc = tuple(loc) + tuple(ctx_err.loc)
            msg, fix = ctx_err.msg, ctx_err.fix
        elif etype == "extra_forbidden":
            key = str(loc[-1])
            allowed = _allowed_keys(model or RunSpec, loc)
            close = difflib.get_close_matches(key, allowed, n=1)
            msg = f"unknown key {key!r}"
            fix = (f"did you mean {close[0]!r}? " if close else "") + (
                f"allowed here: {', '.join(allowed)}" if allowed else "remove it")
        elif etype == "literal_error":
            expected = (e.get("ctx") or {}).get("expected", "")
            msg = f"{e['input']!r} is not allowed"
            fix = f"use one of {expected}"
            if loc and loc[-1] == "provider":
                fix = f"use one of: {', '.join(PROVIDERS)}"
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if "input" in e and etype not in ("missing",) and not isinstance(e["input"], (dict, list)):
                msg += f" (got {e['input']!r})"
            fix = _FIXES.get(etype, "see the run-spec reference in README.md")
        loc = tuple(prefix) + tuple(loc)
        from_set = _override_for(loc, overrides)
        if from_set is not None:
            where = f"override {from_set!r} (from {overrides_from})"
        else:
            line = _line_of(root, loc)
            where = f"{path}:{line}" if line else str(path)
        lines.append(f"{where}: field `{_fmt_loc(loc)}`: {msg}. Fix: {fix}.")
    more = len(err.errors()) - 5
    if more > 0:
        lines.append(f"... and {more} more problem(s)")
    return "\n".join(lines)


#: the largest run spec file read, and the most YAML nodes it may expand to (aliases included)
MAX_SPEC_BYTES = 1_000_000
MAX_SPEC_NODES = 200_000


def _check_yaml_tree(root: yaml.Node | None, path: Path) -> None:
    """Refuse a key given twice in one mapping (YAML would keep the last silently) and alias bombs (anchors
    that expand to more than MAX_SPEC_NODES nodes)."""
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node, depth: int = 0) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 200:
            raise SpecError(f"{path}:{node.start_mark.line + 1}: the YAML nests more than 200 levels deep. "
                            "Fix: a run spec is a few levels deep; check the file.")
        sizes[id(node)] = 1   # a recursive alias counts once
        n = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise SpecError(f"{path}:{k.start_mark.line + 1}: key {k.value!r} appears twice in the same "
                                        f"mapping (first on line {seen[k.value]}); YAML would silently keep the last. "
                                        "Fix: keep one of them.")
                    seen[k.value] = k.start_mark.line + 1
                n += expanded(k, depth + 1) + expanded(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(expanded(v, depth + 1) for v in node.value)
        if n > MAX_SPEC_NODES:
            raise SpecError(f"{path}:{node.start_mark.line + 1}: the YAML expands to more than {MAX_SPEC_NODES:,} "
                            "values (anchors and aliases nested into a 'YAML bomb'?). Fix: write the values out; a run "
                            "spec needs no aliases.")
        sizes[id(node)] = n
        return n

    if root is not None:
        expanded(root)


def load_run_spec(path: str | Path, overrides: dict[str, Any] | None = None, overrides_from: str = "--set") -> RunSpec:
    """Read, validate and cross-check a run spec. Raises :class:`SpecError` with a fix.

    ``overrides`` (dotted keys such as ``{"pairs.count": 20}``) replace fields of the file; a problem
    they cause names the override and ``overrides_from`` (where they came from), not the file's line."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: run spec not found. Fix: pass the path of a YAML file, e.g. specs/runs/demo.yaml.")
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a run spec. Fix: pass a YAML file inside it.")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: the run spec is {size / 1e6:.1f} MB; a run spec is a small YAML file (at most "
                        f"{MAX_SPEC_BYTES // 1_000_000} MB). Fix: keep long texts (model specs, taxonomies) in their own "
                        "files and point to them.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}). "
                        "Fix: save the run spec as UTF-8.") from None
    try:
        root = yaml.compose(text)
        _check_yaml_tree(root, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML: {problem}. Fix: check indentation and quoting on that line.") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a run spec must be a YAML mapping (key: value) at the top level.")
    if overrides:
        _check_override_keys(overrides, overrides_from)
        data = _apply_overrides(data, overrides, path, overrides_from)
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(path, root, exc, overrides, overrides_from=overrides_from)) from None
    spec._source = path.resolve()
    _validate_sections(spec, path, root, overrides, overrides_from)
    _check_files(spec, path, root, overrides, overrides_from)
    if overrides:
        spec._overrides = dict(overrides)
        spec._base = _file_values(str(path.resolve()), *_stamp(path))
    from specstress.secrets import register_key_variables

    register_key_variables([m.key_env for m in spec.models if m.key_env])
    return spec


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=32)
def _file_values(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """The spec file's own values (JSON), without overrides, to say what overrides changed and name
    the run after it; cached per file version. ``{}`` when the file alone is not a valid spec."""
    try:
        return load_run_spec(path).model_dump(mode="json")
    except SpecError:
        return {}


def _override_error(dotted: str, source: str, problem: str, fix: str) -> SpecError:
    stop = "" if problem.endswith("?") else "."
    return SpecError(f"override {dotted!r} (from {source}): {problem}{stop} Fix: {fix}.")


def _check_override_keys(overrides: dict[str, Any], source: str) -> None:
    """Every override key must name a field of the run spec (or of a provider-owned section)."""
    for dotted in overrides:
        parts = dotted.split(".")
        if not dotted or any(not p for p in parts):
            raise _override_error(dotted, source, "an empty part in the dotted key", "write keys such as pairs.count")
        model: Any = RunSpec
        i = 0
        while i < len(parts) and model is not None:
            part = parts[i]
            fields = model.model_fields
            if part not in fields:
                where = ".".join(parts[: i + 1])
                close = difflib.get_close_matches(part, list(fields), n=1)
                meant = ".".join([*parts[:i], close[0]]) if close else ""
                problem = f"unknown field {where!r}" + (f"; did you mean {meant!r}?" if close else "")
                fix = (f"use {'.'.join([*parts[:i], close[0], *parts[i + 1:]])!r}" if close else
                       f"use one of the fields {'here' if i == 0 else 'of ' + repr('.'.join(parts[:i]))}: "
                       f"{', '.join(fields)}")
                raise _override_error(dotted, source, problem, fix)
            ann = fields[part].annotation
            if model is RunSpec and ann is ServiceSection:
                _load_plugins()
                model = _SECTIONS.get(part)  # no plugin: the section's own check reports it
                i += 1
                continue
            inner = _inner_model(ann)
            is_list = getattr(ann, "__origin__", None) is list or any(
                getattr(a, "__origin__", None) is list for a in getattr(ann, "__args__", ()) or ())
            i += 1
            if inner is not None and is_list and i < len(parts):
                if not parts[i].isdigit():
                    raise _override_error(dotted, source, f"{'.'.join(parts[:i])!r} is a list",
                                          f"index it by position, e.g. {'.'.join([*parts[:i], '0', *parts[i:]])}")
                i += 1
            model = inner


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any], path: Path,
                     source: str = "--set") -> dict[str, Any]:
    """Apply dotted-key overrides such as ``{"pairs.count": 10}`` (``models.0.limits.rpm``: a list index)."""
    import copy

    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        cur: Any = data
        parts = dotted.split(".")
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, list):
                if not p.isdigit() or int(p) >= len(cur):
                    raise _override_error(dotted, source, f"{'.'.join(parts[:i])!r} has {len(cur)} entries, "
                                          f"no index {p!r}", f"use an index from 0 to {len(cur) - 1}")
                if last:
                    cur[int(p)] = value
                else:
                    if not isinstance(cur[int(p)], (dict, list)):
                        cur[int(p)] = {}
                    cur = cur[int(p)]
            elif last:
                cur[p] = value
            else:
                if not isinstance(cur.get(p), (dict, list)):
                    cur[p] = {}
                cur = cur[p]
    return data


def _check_files(spec: RunSpec, path: Path, root: yaml.Node | None, overrides: dict[str, Any] | None = None,
                 overrides_from: str = "--set") -> None:
    def need(loc: tuple[Any, ...], rel: str, what: str) -> None:
        if "://" in rel and not rel.startswith("file://"):
            return
        p = spec.resolve(rel)
        if not p.exists():
            line = _line_of(root, loc)
            key = _override_for(loc, overrides)
            where = f"override {key!r} (from {overrides_from})" if key else f"{path}:{line}" if line else str(path)
            raise SpecError(
                f"{where}: field `{_fmt_loc(loc)}`: {what} {rel!r} not found (looked at {p}). "
                f"Fix: correct the path; relative paths are read from the run spec's folder.")

    if spec.taxonomy.source in ("file", "expand"):
        need(("taxonomy", "path"), spec.taxonomy.path, "taxonomy file")
    elif spec.taxonomy.source == "values_in_the_wild":
        if not spec.taxonomy.tree_csv:
            raise SpecError(f"{path}: field `taxonomy.tree_csv`: the values_in_the_wild source needs the path or "
                            "hf:// URL of values_tree.csv. Fix: add `tree_csv:`.")
        need(("taxonomy", "tree_csv"), spec.taxonomy.tree_csv, "values_tree.csv")
    need(("prices",), spec.prices, "price table")
    if spec.compliance.enabled and spec.compliance.model_spec:
        need(("compliance", "model_spec"), spec.compliance.model_spec, "model spec")
