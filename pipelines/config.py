"""Typed configuration: YAML in ``configs/`` validated at load time.

Every stage receives a :class:`Config`. Unknown keys, wrong types and impossible values fail
at load time with a :class:`ConfigError` that names the key (``train.tuning.n_trials``) and
what is allowed. Tier schemes are data: built-in schemes live in ``configs/schemes.yaml`` and a
config may add its own under ``schemes:``.
"""

from __future__ import annotations

import datetime as dt
import os
import types
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from leadtier.models.hyperparams import check_dimension
from leadtier.models.schemes import TierScheme
from leadtier.pipelines.errors import UserError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

DATA_ROOT_ENV = "LEADTIER_DATA_ROOT"
# the repository's configs/schemes.yaml; an installed wheel carries the same file as pipelines/configs/
_REPO_SCHEMES = Path(__file__).resolve().parents[1] / "configs" / "schemes.yaml"
_WHEEL_SCHEMES = Path(__file__).resolve().parent / "configs" / "schemes.yaml"
BUILTIN_SCHEMES = _REPO_SCHEMES if _REPO_SCHEMES.is_file() else _WHEEL_SCHEMES


class ConfigError(UserError, ValueError):
    """A configuration file or override is missing, malformed or inconsistent."""


class _Strict(BaseModel):
    # validate_assignment: ``cfg.train.tuning.n_trials = 0`` fails like the same value in a YAML file
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __setattr__(self, name: str, value: Any) -> None:
        # pydantic runs a model's own validators (rules across fields) after storing the value: a value
        # they refuse must not stay behind
        old = self.__dict__.get(name, _UNSET)
        try:
            super().__setattr__(name, value)
        except ValidationError:
            if old is not _UNSET:
                self.__dict__[name] = old
            raise

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_for_a_number(cls, value: Any, info) -> Any:
        # pydantic reads true/false (YAML's yes/no too) as 1/0 where a number goes: a typo, not a number
        if _yes_no_for_a_number(value, cls.model_fields[info.field_name].annotation):
            raise ValueError(f"needs numbers, not yes/no or true/false. Got {value!r} instead")
        return value


_UNSET = object()


def _members(annotation: Any) -> list[Any]:
    """The types a field annotation allows, Annotated and unions unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _yes_no_for_a_number(value: Any, annotation: Any) -> bool:
    """Is ``value`` (or an item of it, for a list or mapping of numbers) a bool where the type takes
    numbers and no bool? Text and Literal settings are left to their own messages."""
    members = _members(annotation)
    if isinstance(value, bool):
        takes_bool = any(
            m is bool or m is Any or (typing.get_origin(m) is Literal and True in typing.get_args(m)) for m in members
        )
        return not takes_bool and any(m in (int, float) for m in members)
    for m in members:
        origin, args = typing.get_origin(m), typing.get_args(m)
        if isinstance(value, list) and origin in (list, tuple, set) and args:
            return any(_yes_no_for_a_number(v, args[0]) for v in value)
        if isinstance(value, dict) and origin is dict and len(args) == 2:
            return any(_yes_no_for_a_number(v, args[1]) for v in value.values())
    return False


# --------------------------------------------------------------------------- data contract

CANONICAL_COLUMNS: dict[str, dict[str, str]] = {
    # table -> canonical column -> kind (id | date | timestamp | str | float | int)
    "customers": {"customer_id": "id"},
    "transactions": {
        "customer_id": "id",
        "ts": "timestamp",
        "invoice_id": "str",
        "amount": "float",
        "quantity": "int",
    },
    "interactions": {"customer_id": "id", "ts": "timestamp", "type": "str"},
    "labels": {"customer_id": "id", "tier": "str"},
    "outcomes": {"customer_id": "id"},
    "stages": {"customer_id": "id", "ts": "timestamp", "stage": "str"},
}
OPTIONAL_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"created_at": "date"},
    "transactions": {"product_id": "str", "channel": "str", "unit_price": "float"},
    "interactions": {"duration_s": "float"},
    "labels": {"labelled_at": "date"},
    # an entity's outcome (labels.outcome.kind days_to_win); a stage column becomes one through `derived`
    "outcomes": {"won_at": "timestamp", "lost_at": "timestamp"},
    "stages": {},
}


EventTable = Literal["transactions", "interactions"]
# utf-8, utf-16 and latin-1 DuckDB reads itself; the East Asian ones are read through a UTF-8 copy
Encoding = Literal["utf-8", "utf-16", "latin-1", "gbk", "gb18030", "big5", "shift_jis"]


def _date_formats(value: Any) -> Any:
    """A strptime format, or a non-empty list of them, each one DuckDB reads; anything else is one plain error."""
    if value is None:
        return value
    formats = [value] if isinstance(value, str) else value
    if not (isinstance(formats, list) and formats and all(isinstance(v, str) for v in formats)):
        raise ValueError(f"must be a strptime format or a non-empty list of them. Got {value!r} instead")
    for fmt in formats:
        _readable_format(fmt)
    return value


def _readable_format(fmt: str) -> None:
    """``fmt`` as DuckDB's strptime reads it, or an error saying which specifier it does not know."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SELECT try_strptime('2020', ?)", [fmt])
    except duckdb.Error as exc:
        said = str(exc).removeprefix("Invalid Input Error: ").splitlines()[0].strip()
        epoch = (
            "; epoch seconds (1700000000) take no date_format: derive the column, e.g. "
            "derived: {ts: 'to_timestamp(CAST(\"your_column\" AS BIGINT))'}"
            if "%s" in fmt
            else ""
        )
        raise ValueError(
            f"{said} (specifiers: %Y %m %d %H %M %S %f %z %p %b ...){epoch}. Got {fmt!r} instead"
        ) from None
    finally:
        con.close()


DateFormat = Annotated[str | list[str] | None, BeforeValidator(_date_formats)]
Thousands = Literal["", ",", "'", " "]


def _notation_fits(decimal: str, thousands: str) -> None:
    if decimal == "," and thousands:
        raise ValueError(
            f"thousands: decimal ',' reads '.' and spaces as thousands marks already ('1.234,56'); thousands is for "
            f"decimal '.'. Got thousands {thousands!r} instead"
        )


class FileSpec(_Strict):
    """One input file and how its columns map onto the canonical names."""

    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical name -> column name in this file; unmapped canonical names are "
        "looked up under their own name",
    )
    date_format: DateFormat = Field(
        default=None,
        description="strptime format for text date columns, e.g. '%m/%d/%Y %H:%M'; a list: each cell is read "
        "with the first format that fits it (e.g. ['%d.%m.%Y %H:%M', '%d.%m.%Y'])",
    )
    encoding: Encoding = Field(default="utf-8", description="text encoding of a CSV file")
    decimal: Literal[".", ","] = Field(
        default=".",
        description="the decimal mark of numbers written as text: ',' reads '1.234,56' as 1234.56 (a '.' or a space "
        "groups thousands, three digits a group; '12.5' is no number there)",
    )
    thousands: Thousands = Field(
        default="",
        description="with decimal '.', the mark that groups thousands in numbers written as text: ',' reads "
        "'12,500.00' as 12500 (\"'\" and ' ' too; three digits a group, else the value is no number)",
    )
    derived: dict[str, str] = Field(
        default_factory=dict,
        description='canonical name -> SQL expression over this file\'s columns, e.g. amount: \'"Quantity" * "Price"\'',
    )

    @model_validator(mode="after")
    def _one_notation(self) -> FileSpec:
        _notation_fits(self.decimal, self.thousands)
        return self


_FILE_KEYS = (
    "format",
    "columns",
    "date_format",
    "encoding",
    "decimal",
    "thousands",
    "derived",
)  # describe the one file of `path`


class JoinSpec(_Strict):
    """A lookup table joined many-to-one onto every file of a table by a key (accounts on account_id)."""

    path: str = Field(description="the lookup file, relative to data.root")
    by: str = Field(description="the key column in this table's files (YAML reads a key named `on` as true)")
    key: str | None = Field(default=None, description="the key column in the lookup file; default: the same as by")
    format: Literal["auto", "csv", "parquet"] = "auto"
    encoding: Encoding = "utf-8"
    prefix: str = Field(
        default="",
        description="put before every column name of the lookup file (not the key), e.g. 'account_', when a name "
        "is also a column of the table",
    )

    @property
    def lookup_key(self) -> str:
        return self.key or self.by


class TableSpec(_Strict):
    """A logical table, read from one or more files (rows are stacked)."""

    path: str | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    columns: dict[str, str] = Field(default_factory=dict)
    date_format: DateFormat = None
    encoding: Encoding = "utf-8"
    decimal: Literal[".", ","] = "."
    thousands: Thousands = ""
    derived: dict[str, str] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    joins: dict[str, JoinSpec] = Field(
        default_factory=dict,
        description="name -> lookup table joined by key onto every file (many-to-one; the key must be unique in "
        "the lookup file); its columns can be listed as attributes like the file's own",
    )
    derive_from: EventTable | list[EventTable] | None = Field(
        default=None,
        description="customers only: no customer file; one customer per id seen in these event tables "
        "(transactions, interactions or both: an event log where most visitors never buy), created at its first "
        "event there, attributes taken from its first row of the first table listed",
    )
    na_values: list[str] = Field(
        default_factory=list,
        description="values that mean missing in attribute columns, e.g. 'Select'; in a numeric "
        "column also a number such as 999, whether the file holds it as text or as a number",
    )
    leaky: list[str] = Field(
        default_factory=list, description="columns that reveal the outcome: never features (e.g. Tags, Converted)"
    )
    categorical: list[str] = Field(default_factory=list, description="attribute columns used as categories")
    numeric: list[str] = Field(default_factory=list, description="numeric attribute columns used as features")
    money: list[str] = Field(
        default_factory=list,
        description="numeric attributes that are amounts of money (a deal's value, a budget): reasons show "
        "them with report.currency and thousands separators",
    )
    personal: list[str] = Field(
        default_factory=list, description="personal data: never a feature, never logged or reported"
    )
    drop_exact_duplicates: bool = Field(
        default=False, description="identical rows (e.g. files that overlap in time) are kept once, and counted"
    )
    restated_by: list[str] = Field(
        default_factory=list,
        description="event tables read from overlapping exports (files): canonical columns, e.g. [invoice_id], "
        "whose rows in a later file replace the rows with the same values in every earlier file (an invoice "
        "restated with a new amount is counted once, as the later export has it); dropped rows are counted",
    )
    exclude: dict[str, str] = Field(
        default_factory=dict,
        description="rule name -> SQL predicate on canonical columns; matching rows are dropped and counted "
        "per rule, e.g. 'price <= 0': 'unit_price <= 0'",
    )

    @model_validator(mode="before")
    @classmethod
    def _path_is_one_file(cls, data: Any) -> Any:
        """``path`` (with its format, columns, ...) is shorthand for ``files`` with one entry; beside
        ``files``, those keys describe every file (a file's own ``columns`` and ``derived`` add to them,
        its other keys replace them)."""
        if not isinstance(data, dict):
            return data
        if not data.get("path"):
            return cls._shared_file_keys(data)
        if data.get("files"):
            raise ValueError("give either 'path' (one file) or 'files' (a list), not both")
        data = dict(data)
        one = {k: data.pop(k) for k in ("path", *_FILE_KEYS) if k in data}
        return {**data, "files": [one]}

    @staticmethod
    def _shared_file_keys(data: dict) -> dict:
        shared = {k: data[k] for k in _FILE_KEYS if k in data}
        if not shared or not isinstance(data.get("files"), list):
            return data
        data = {k: v for k, v in data.items() if k not in shared}
        files = []
        for f in data["files"]:
            if isinstance(f, dict):
                mine = {k: v for k, v in f.items() if k in shared}
                both = {
                    k: {**v, **mine[k]}
                    for k, v in shared.items()
                    if isinstance(v, dict) and isinstance(mine.get(k), dict)
                }
                f = {**shared, **f, **both}
            files.append(f)
        return {**data, "files": files}

    @field_validator("derive_from", mode="after")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, str) else value  # a list from here on

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        if not self.files and not self.derive_from:
            raise ValueError("no input file: set 'path', 'files' or (customers only) 'derive_from'")
        if self.files and self.derive_from:
            raise ValueError("give either input files or 'derive_from', not both")
        if (
            self.derive_from is not None
            and len(set(self.derive_from)) != len(self.derive_from)
            or self.derive_from == []
        ):
            raise ValueError(f"derive_from names each event table once, at least one. Got {self.derive_from} instead")
        features = set(self.categorical) | set(self.numeric)
        for kind, cols in (("personal", self.personal), ("leaky", self.leaky)):
            overlap = features & set(cols)
            if overlap:
                raise ValueError(f"columns declared {kind} cannot be features: {sorted(overlap)}")
        return self


class Tables(_Strict):
    customers: TableSpec
    transactions: TableSpec | None = None
    interactions: TableSpec | None = None
    labels: TableSpec | None = None
    outcomes: TableSpec | None = Field(
        default=None,
        description="when each entity (lead, opportunity) was won or lost: customer_id, won_at, lost_at; never "
        "a feature (labels.outcome.kind days_to_win)",
    )
    stages: TableSpec | None = Field(
        default=None,
        description="a stage log: one row per stage an entity entered (customer_id, stage, ts), e.g. an "
        "opportunity's pipeline history; read by the stages feature family (features.stage_order)",
    )

    @model_validator(mode="after")
    def _restated_by_canonical_event_columns(self) -> Tables:
        for table in ("transactions", "interactions", "stages"):
            spec = getattr(self, table)
            canonical = [*CANONICAL_COLUMNS[table], *OPTIONAL_COLUMNS[table]]
            bad = sorted(set(spec.restated_by) - set(canonical)) if spec is not None else []
            if bad:
                raise ValueError(
                    f"{table}.restated_by: {bad} are not canonical columns of {table}; allowed: {canonical}"
                )
        for table in ("customers", "labels", "outcomes"):
            spec = getattr(self, table)
            if spec is not None and spec.restated_by:
                raise ValueError(f"{table}.restated_by: only event tables (transactions, interactions, stages) take it")
        for table in ("transactions", "interactions", "stages"):
            spec = getattr(self, table)
            if spec is not None and spec.restated_by and len(spec.files) < 2:
                raise ValueError(
                    f"{table}.restated_by: a later file replaces an earlier one's rows; list the files under 'files'"
                )
        return self

    @model_validator(mode="after")
    def _derived_from_configured(self) -> Tables:
        absent = [t for t in self.customers.derive_from or [] if getattr(self, t) is None]
        if absent:
            raise ValueError(f"customers.derive_from names {absent}, which are not configured tables")
        return self

    @model_validator(mode="after")
    def _known_columns(self) -> Tables:
        """``columns`` and ``derived`` name canonical columns or declared attributes: never ignored."""
        for table in CANONICAL_COLUMNS:
            spec = getattr(self, table, None)
            for fs in spec.files if spec is not None else []:
                problem = unknown_file_keys(table, spec, fs)
                if problem:
                    raise ValueError(f"{table} (file {fs.path}): {problem}")
        return self


def unknown_file_keys(table: str, spec: TableSpec, fs: FileSpec) -> str | None:
    """What ``fs.columns`` or ``fs.derived`` names that is no column the table has, or None."""
    canonical = [*CANONICAL_COLUMNS.get(table, {}), *OPTIONAL_COLUMNS.get(table, {})]
    bad = sorted(set(fs.columns) - set(canonical))
    if bad:
        return f"columns: {bad} are not canonical columns of {table}; allowed: {canonical}"
    attributes = [*spec.categorical, *spec.numeric, *spec.leaky]
    keys = [j.by for j in spec.joins.values()]
    bad = sorted(set(fs.derived) - set(canonical) - set(attributes) - set(keys))
    if bad:
        return (
            f"derived: {bad} are neither canonical columns of {table} ({canonical}) nor attributes listed under "
            f"categorical, numeric or leaky ({attributes}) nor join keys ({keys}); a derived column must be one "
            f"of them. Got {bad} instead"
        )
    return None


class DataConfig(_Strict):
    root: str = Field(description=f"folder the table paths are relative to; ${DATA_ROOT_ENV} overrides it")
    as_of: dt.date = Field(description="snapshot date: events on or after it are the future")
    tables: Tables
    time_zone: str = Field(
        default="UTC",
        description="session time zone of DuckDB and Spark: a timestamp with an offset or a zone is read as the "
        "wall-clock time of this zone (IANA name, e.g. Europe/Paris)",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time_zone must be an IANA time zone name such as UTC or Europe/Paris. Got {v!r} instead"
            ) from None
        return v


class DemoConfig(_Strict):
    world: Literal["crm", "b2b"] = Field(
        default="crm",
        description="what `leadtier demo-data` generates: crm (customers, transactions, interactions, labels) or "
        "b2b (accounts, contacts, opportunities with their outcomes, a stage log and activities; n_customers "
        "opportunities)",
    )
    n_customers: Annotated[int, Field(ge=10)] = 20_000
    history_days: Annotated[int, Field(ge=60)] = 730
    label_share: Annotated[float, Field(gt=0, le=1)] = 0.30
    prospects_file: str = "prospects.csv"


# --------------------------------------------------------------------------- features


# feature families that can describe each entity on its own clock (labels.outcome.kind days_to_win)
ENTITY_CLOCK_FAMILIES = ("stages", "interactions")


class FeatureConfig(_Strict):
    families: list[Literal["customers", "rfm", "interactions", "stages"]] = ["customers", "rfm", "interactions"]
    windows_days: list[Annotated[int, Field(ge=1, le=3650)]] = [7, 30, 90]
    interaction_types: list[str] = Field(default_factory=list)
    type_words: dict[str, dict[Literal["en", "zh"], str]] = Field(
        default_factory=dict,
        description="interaction type -> its words in reasons and the report, per language: {site_visit: {en: "
        "'site visit|site visits', zh: 现场拜访}} (English: singular|plural); types without words read as "
        "written, built-in ones (call, meeting, ...) as features.yaml says",
    )
    attribute_words: dict[str, dict[Literal["en", "zh"], str]] = Field(
        default_factory=dict,
        description="customers attribute (as listed under tables.customers categorical or numeric) -> its name "
        "per language in reasons and the report: {source: {en: Lead source, zh: 线索来源}}; without, an "
        "attribute reads as its file's column is written",
    )
    output: str = "outputs/features.parquet"
    exclude: list[str] = Field(
        default_factory=list,
        description="feature columns (or customers attributes by their file name) kept out of the model and the "
        "segments; still in the feature table, e.g. an order column for train.order_by (a scoring input may lack such "
        "an attribute)",
    )
    stage_order: list[str] = Field(
        default_factory=list,
        description="the stages family: the stages of tables.stages in pipeline order, first to last (e.g. "
        "[prospecting, qualification, proposal, negotiation]); the furthest stage reached is a position in it",
    )
    entity_as_of_days: Annotated[int, Field(ge=0, le=3650)] = Field(
        default=0,
        description="labels.outcome.kind days_to_win: the stages and interactions families describe each entity "
        "as of its start plus this many days (its first days), or data.as_of when that is earlier",
    )

    @field_validator("windows_days")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one window is needed, e.g. [7, 30, 90]")
        if sorted(set(v)) != v:
            raise ValueError(f"windows must be increasing and unique. Got {v} instead")
        if 30 not in v:
            raise ValueError(f"windows must include 30 (the 30-day trend features use it). Got {v} instead")
        return v

    @field_validator("stage_order")
    @classmethod
    def _stages_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"stage_order must name each stage once. Got {v} instead")
        return v

    @model_validator(mode="after")
    def _stage_order_given(self) -> FeatureConfig:
        if "stages" in self.families and not self.stage_order:
            raise ValueError(
                "stage_order: the stages family needs the stages in pipeline order, e.g. [prospecting, "
                "qualification, proposal, negotiation]"
            )
        return self

    @model_validator(mode="after")
    def _words_of_listed_types(self) -> FeatureConfig:
        if self.type_words and not self.interaction_types:
            raise ValueError(
                "type_words gives words to interaction types, but features.interaction_types lists none (only "
                "listed types are counted one by one): list them, or remove type_words"
            )
        unknown = [t for t in self.type_words if t not in self.interaction_types]
        if unknown:
            raise ValueError(
                f"type_words names {unknown}, which features.interaction_types does not list: {self.interaction_types}"
            )
        return self

    @field_validator("interaction_types")
    @classmethod
    def _identifiers(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not t.replace("_", "").isalnum() or t != unicodedata.normalize("NFC", t)]
        if bad:
            raise ValueError(
                f"interaction types must be letters (of any script), digits and '_' (they name feature columns, "
                f"e.g. ix_拜访_30d). Got {bad} instead; map other spellings with tables.interactions.derived, e.g. "
                "type: 'CASE \"类型\" WHEN ''上门拜访'' THEN ''拜访'' ELSE ''其他'' END'"
            )
        if len({t.lower() for t in v}) != len(v):
            raise ValueError(f"interaction types must differ in more than case (they name feature columns). Got {v}")
        return v


# --------------------------------------------------------------------------- labels


class OutcomeConfig(_Strict):
    """Tiers derived from what each customer did after the snapshot date."""

    kind: Literal["days_to_next_purchase", "revenue_next_days", "purchase_stage", "days_to_win"] = Field(
        default="days_to_next_purchase",
        description="days_to_next_purchase / revenue_next_days / purchase_stage: from a snapshot date for every "
        "customer; "
        "days_to_win: on each entity's own clock, from its start (customers.created_at) to its win "
        "(outcomes.won_at), censored per entity at data.as_of",
    )
    thresholds_days: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [30, 90, 180],
        description="days_to_next_purchase: upper bounds of the first levels (A <= 30, B <= 90, C <= 180); "
        "the next level is 'later within the horizon', the last 'no purchase within the horizon'",
    )
    horizon_days: Annotated[int, Field(ge=1)] = 365
    observed_from: dt.date | None = Field(
        default=None,
        description="days_to_win: the first date outcomes were recorded; an entity started before it gets no "
        "label (a win before it would be missing) and is counted as unlabelled",
    )
    cut_points: list[float] = Field(
        default_factory=lambda: [1000.0, 100.0],
        description="revenue_next_days: revenue lower bounds of the levels before the last, best first",
    )
    loyal_purchases: Annotated[int, Field(ge=2)] = Field(
        default=3,
        description="purchase_stage: the purchases within horizon_days after the snapshot that make a customer "
        "loyal (the best level); then repeat (2 or more purchases in all by the horizon's end), first-time "
        "(exactly 1) and prospect (none)",
    )
    observed_until: dt.date | None = Field(
        default=None,
        description="days_to_next_purchase / revenue_next_days / purchase_stage: the day the transactions were "
        "exported (outcomes are observed before it); default: the day after the last transaction, leaving out a "
        "few rows dated more than horizon_days after all the others (a mistyped year)",
    )

    @field_validator("thresholds_days")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if sorted(set(v)) != v:
            raise ValueError(f"tier thresholds must be strictly increasing. Got {v} instead")
        return v

    @field_validator("cut_points")
    @classmethod
    def _decreasing(cls, v: list[float]) -> list[float]:
        if sorted(set(v), reverse=True) != v:
            raise ValueError(f"cut points must be strictly decreasing (best level first). Got {v} instead")
        return v

    @model_validator(mode="after")
    def _read_by_kind(self) -> OutcomeConfig:
        """A key the chosen kind does not read, set to other than its default, is an error, not ignored."""
        reads = {
            "thresholds_days": ("days_to_next_purchase", "days_to_win"),
            "cut_points": ("revenue_next_days",),
            "loyal_purchases": ("purchase_stage",),
            "observed_from": ("days_to_win",),
        }
        fields = type(self).model_fields
        unread = [
            k
            for k, kinds in reads.items()
            if self.kind not in kinds and getattr(self, k) != fields[k].get_default(call_default_factory=True)
        ]
        if unread:
            raise ValueError(
                f"labels.outcome.kind {self.kind!r} does not read {unread}: "
                + "; ".join(f"{k} is read by {list(reads[k])}" for k in unread)
                + ". Remove them, or choose the kind that reads them"
            )
        return self


class LabelRule(_Strict):
    """One rule of ``labels.source: rules``: the rows its condition holds for (and no earlier rule's) get its tier."""

    tier: str = Field(description="the scheme level code the rule gives")
    when: str = Field(
        description="SQL condition (DuckDB) over the customers table: canonical columns, attributes, and the "
        "leaky columns (kept for the rules, never features), e.g. \"tender = 'only ours' AND contract = 'signed'\""
    )


class LabelConfig(_Strict):
    source: Literal["table", "outcome", "rules"] = Field(
        default="table",
        description="table: a labels table (people); outcome: what customers did after the snapshot; rules: "
        "labels.rules over the customers' columns, first match wins, the rest unlabelled",
    )
    rules: list[LabelRule] = Field(default_factory=list, description="labels.source rules: the rules, in order")
    scheme: str = "time_to_close"
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="raw label value -> scheme level code (identity when empty); values and keys are compared "
        "without surrounding spaces",
    )
    outcome: OutcomeConfig = Field(default_factory=OutcomeConfig)
    allow_empty_tiers: bool = Field(
        default=False,
        description="a level that no labelled row reaches is reported and the run goes on with the levels that "
        "exist (the registered model has those); false: the run stops",
    )

    @model_validator(mode="after")
    def _rules_with_their_source(self) -> LabelConfig:
        if self.source == "rules" and not self.rules:
            raise ValueError("labels.source 'rules' needs labels.rules: a list of {tier, when}")
        if self.rules and self.source != "rules":
            raise ValueError(
                f"labels.rules is used only with labels.source 'rules'. Got source {self.source!r} instead"
            )
        if self.source != "outcome" and self.outcome != OutcomeConfig():
            raise ValueError(
                f"labels.outcome is used only with labels.source 'outcome' (tiers from what customers did after "
                f"the snapshot); set labels.source: outcome, or remove labels.outcome. Got source {self.source!r} "
                "instead"
            )
        return self

    @field_validator("mapping")
    @classmethod
    def _keys_without_spaces(cls, v: dict[str, str]) -> dict[str, str]:
        """Label values are read without surrounding spaces, so the keys are too ("iv " maps 'iv')."""
        out: dict[str, str] = {}
        for key, code in v.items():
            k = str(key).strip()
            if k in out and out[k] != code:
                raise ValueError(f"keys {k!r} with and without spaces map to {out[k]!r} and {code!r}; keep one")
            out[k] = code
        return out


class SnapshotConfig(_Strict):
    """Rolling as-of dates: train on earlier snapshots, evaluate on the latest (a backtest)."""

    train_as_of: list[dt.date] = Field(default_factory=list)
    eval_as_of: list[dt.date] = Field(default_factory=list)
    survival_as_of: list[dt.date] = Field(
        default_factory=list,
        description="train.model survival or best in a backtest: more training snapshots for the survival model "
        "only, before the evaluation date; their horizon need not be observed by it (a censored customer counts "
        "as 'no event for at least d days')",
    )

    @model_validator(mode="after")
    def _order(self) -> SnapshotConfig:
        if bool(self.train_as_of) != bool(self.eval_as_of):
            raise ValueError("give both train_as_of and eval_as_of, or neither")
        if self.train_as_of and max(self.train_as_of) >= min(self.eval_as_of):
            raise ValueError(
                f"every training snapshot must precede the evaluation snapshots. Got train {self.train_as_of} "
                f"and eval {self.eval_as_of} instead"
            )
        if self.survival_as_of and (not self.eval_as_of or max(self.survival_as_of) >= min(self.eval_as_of)):
            raise ValueError(
                "survival_as_of snapshots must precede the evaluation snapshots (eval_as_of). "
                f"Got {self.survival_as_of} and eval {self.eval_as_of} instead"
            )
        return self


# --------------------------------------------------------------------------- models


class SearchDim(_Strict):
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError("a numeric dimension needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"'low' must not exceed 'high'. Got low={self.low}, high={self.high} instead")
            if self.log and self.low <= 0:
                raise ValueError(f"a log-scaled dimension needs low > 0. Got low={self.low} instead")
        return self


DEFAULT_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "n_estimators": {"type": "int", "low": 100, "high": 600, "log": True},
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.2, "log": True},
    "num_leaves": {"type": "int", "low": 8, "high": 64, "log": True},
    "min_child_samples": {"type": "int", "low": 10, "high": 100, "log": True},
    "subsample": {"type": "float", "low": 0.6, "high": 1.0},
    "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
    "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
}


class TuningConfig(_Strict):
    n_trials: Annotated[int, Field(ge=1)] = 20
    timeout_s: Annotated[float, Field(gt=0)] = 120
    cv_folds: Annotated[int, Field(ge=2, le=10)] = 3
    progress: bool | None = Field(
        default=None,
        description="show trial n/N, the best score so far and the time left while tuning; "
        "null: only when stderr is a terminal (never in a log file)",
    )
    search_space: dict[str, SearchDim] = Field(
        default_factory=lambda: {k: SearchDim(**v) for k, v in DEFAULT_SEARCH_SPACE.items()}
    )

    @field_validator("search_space")
    @classmethod
    def _known_and_valid(cls, v: dict[str, SearchDim]) -> dict[str, SearchDim]:
        if not v:
            raise ValueError("the search space is empty: give at least one dimension")
        problems = [
            check_dimension(name, d.type, d.choices if d.type == "categorical" else [d.low, d.high])
            for name, d in v.items()
        ]
        problems = [p for p in problems if p]
        if problems:
            raise ValueError("; ".join(problems))
        return v


class SemiSupervisedConfig(_Strict):
    enabled: bool = False
    threshold: Annotated[float, Field(gt=0.5, le=1.0)] = 0.85
    max_rounds: Annotated[int, Field(ge=1, le=10)] = 2


class FloorsConfig(_Strict):
    """A new model must reach these on the evaluation rows to become champion at all."""

    macro_f1: Annotated[float, Field(ge=0, le=1)] | None = None
    qwk: Annotated[float, Field(ge=-1, le=1)] | None = None
    balanced_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None


class GateConfig(_Strict):
    """How clearly a new model must beat the current champion to take its place."""

    min_gain: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="the primary metric must improve on the champion's by more than this, in the metric's own "
        "units (for log_loss: fall by more than this)",
    )
    interval: bool = Field(
        default=False,
        description="also require the whole 95 % paired-bootstrap interval of that gain to lie above min_gain; "
        "where the champion's predictions for the evaluation rows are unavailable the gate says so and "
        "compares point estimates",
    )


class ChoiceConfig(_Strict):
    """Which model becomes the tier model, chosen on validation rows inside the training rows."""

    candidates: list[Literal["lightgbm", "logreg", "average", "catboost", "average3"]] = Field(
        default_factory=lambda: ["average3", "average", "lightgbm", "logreg", "catboost"],
        description="in order of preference (the first stays unless another is better beyond noise): the average of "
        "the LightGBM's, the logistic regression's and CatBoost's probabilities, the average of the first two, the "
        "tuned LightGBM, the logistic regression, CatBoost",
    )
    folds: Annotated[int, Field(ge=2, le=10)] = Field(
        default=3,
        description="stratified folds of the training rows that the candidates are scored on (time-ordered "
        "protocols validate on the newest training rows instead)",
    )
    rule: Literal["significant", "best"] = Field(
        default="significant",
        description="significant: the first candidate stays unless another beats it with the whole 95 % bootstrap "
        "interval of the gain above tolerance; best: the best primary metric wins",
    )
    tolerance: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="significant: the margin the interval must clear; best: an earlier candidate wins when within "
        "this of the best",
    )

    @field_validator("candidates")
    @classmethod
    def _some_unique(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"candidates must list at least one model, each once. Got {v} instead")
        return v


class TrainConfig(_Strict):
    evaluation: Literal["holdout", "kfold", "backtest", "ordered_holdout"] = Field(
        default="holdout",
        description="holdout: stratified split of one snapshot; kfold: stratified k-fold out-of-fold metrics "
        "(data without time), final model on all labels; backtest: snapshots.train_as_of -> eval_as_of; "
        "ordered_holdout: the newest test_size share of rows by order_by is evaluated, the older rows train",
    )
    refit: bool = Field(
        default=True,
        description="holdout, ordered_holdout, backtest: once evaluated, fit the registered model again (the "
        "evaluated candidate and decision balance, the tuned hyper-parameters, calibrated anew) on training and "
        "evaluation rows together, so that it knows the newest labels; the figures measure it fitted on the "
        "training rows. false registers the evaluated model itself. kfold always fits it on every labelled row",
    )
    order_by: str | None = Field(
        default=None,
        description="ordered_holdout: the column that orders the rows in time, newest highest (a feature column, "
        "a customers attribute by its file name, or created_at); keep it out of the model with features.exclude",
    )
    choice: ChoiceConfig = Field(default_factory=lambda: ChoiceConfig())
    model: Literal["classifier", "survival", "best"] = Field(
        default="classifier",
        description="the tier model's kind for time-to-event labels (labels.outcome.kind days_to_next_purchase or "
        "days_to_win): classifier (train.choice's candidates, on labelled rows), survival (a discrete-time hazard "
        "model that also learns from censored entities; tier probabilities from its survival curve), or best "
        "(the better of the two by primary_metric on validation rows inside the training rows). The other "
        "kind is scored beside it on the same evaluation rows",
    )
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    test_size: Annotated[float, Field(gt=0.05, lt=0.9)] = 0.25
    primary_metric: Literal["macro_f1", "qwk", "balanced_accuracy", "log_loss", "roc_auc", "pr_auc"] = Field(
        default="macro_f1",
        description="what tuning optimises and the champion gate compares; roc_auc and pr_auc need two tiers",
    )
    min_per_tier: Annotated[int, Field(ge=1)] = 30
    class_weight: Literal["balanced", "none"] = "balanced"
    decision_balance: Literal["auto"] | Annotated[float, Field(ge=0, le=1)] = Field(
        default="auto",
        description="how far the decision favours rare tiers: each tier's probability is divided by its frequency "
        "to this power, 1 as if every tier were equally frequent (what class_weight balanced decides by), 0 the "
        "most probable tier; auto: the one of 1, 0.75, 0.5, 0.25, 0 whose tiers score best by primary_metric on "
        "the validation rows inside the training rows that choose the model, under train.choice.rule (class_weight's "
        "own, 1 or 0, stays unless another beats it beyond noise, or at all under rule best; with a primary metric "
        "of probabilities, class_weight's own)",
    )
    calibration: Literal["auto", "none", "temperature", "sigmoid", "isotonic"] = Field(
        default="auto",
        description="calibrate probabilities on a held-out share of the training rows (scikit-learn); auto: "
        "the one (or none) with the lowest cross-validated log-loss on those rows",
    )
    calibration_size: Annotated[float, Field(gt=0.05, lt=0.5)] = 0.2
    calibration_cv: Annotated[int, Field(ge=0, le=10)] = Field(
        default=0,
        description="0: calibrate on the held-out calibration_size share; k >= 2: fit the calibrator on k-fold "
        "out-of-fold predictions and keep one booster trained on all rows",
    )
    decision: Literal["argmax", "min_expected_cost"] = Field(
        default="argmax",
        description="tier from probabilities: most probable, or lowest expected cost over ordered tiers",
    )
    cost_matrix: list[list[float]] | None = Field(
        default=None,
        description="cost[true][predicted] for min_expected_cost, levels in scheme order; default |i - j|",
    )
    grade_bands: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict,
        description="grade -> lowest 0-100 score of the band, e.g. {A: 75, B: 50, C: 25, D: 0}; adds a "
        "`grade` column to predictions (the score comes from calibrated probabilities)",
    )
    bootstrap_resamples: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=2000,
        description="paired bootstrap resamples of the evaluation rows behind the 95 % interval of the model's "
        "gain over each baseline; 0: no intervals. Seeded by `seed`",
    )
    censoring_proxy_auc: Annotated[float, Field(gt=0.5, le=1)] | None = Field(
        default=0.8,
        description="name every model feature that alone tells labelled rows from unlabelled ones (censored, or "
        "never labelled) with a ROC AUC at or above this: it may stand in for the label's availability rather "
        "than the tier (keep it out with features.exclude); null: do not check",
    )
    giveaway_auc: Annotated[float, Field(gt=0.5, le=1)] | None = Field(
        default=0.95,
        description="name every attribute of the customers table (read as exported, with no date of its own) "
        "that alone picks out one tier from the others with a ROC AUC at or above this: it may have been "
        "recorded after the outcome (a deal's current stage, a close date); list such a column under leaky. "
        "Event features are cut at the as-of date and are not checked; null: do not check",
    )
    semi_supervised: SemiSupervisedConfig = Field(default_factory=SemiSupervisedConfig)
    floors: FloorsConfig = Field(default_factory=FloorsConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    n_jobs: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="LightGBM threads; 1 is fastest on small data and busy 2-core machines"
    )
    tuning: TuningConfig = Field(default_factory=TuningConfig)

    @field_validator("bootstrap_resamples")
    @classmethod
    def _enough_resamples(cls, v: int) -> int:
        if 0 < v < 20:
            raise ValueError(f"needs 0 (no intervals) or at least 20 resamples for a 95 % interval. Got {v} instead")
        return v

    @model_validator(mode="after")
    def _ordered_has_an_order(self) -> TrainConfig:
        if self.evaluation == "ordered_holdout" and not self.order_by:
            raise ValueError("evaluation ordered_holdout needs order_by: the column that orders the rows in time")
        return self

    @model_validator(mode="after")
    def _gate_has_resamples(self) -> TrainConfig:
        if self.gate.interval and not self.bootstrap_resamples:
            raise ValueError(
                "gate.interval needs bootstrap resamples for its interval, but bootstrap_resamples is 0. "
                "Set bootstrap_resamples to 20 or more, or gate.interval to false"
            )
        return self


class SegmentConfig(_Strict):
    k: Annotated[int, Field(ge=2)] | None = None
    k_range: tuple[Annotated[int, Field(ge=2)], Annotated[int, Field(ge=2)]] = (3, 8)
    minibatch_above: Annotated[int, Field(ge=1000)] = 200_000
    silhouette_sample: Annotated[int, Field(ge=500)] = 4_000
    exclude_columns: list[str] = Field(
        default_factory=list,
        description="feature columns K-means never clusters on (e.g. a sequential number the classifier uses)",
    )

    @field_validator("k_range")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] > v[1]:
            raise ValueError(f"k_range must be [low, high] with low <= high. Got {list(v)} instead")
        return v


class PredictConfig(_Strict):
    input: str | None = Field(
        default=None, description="customers to score (same columns as the customers table); all when empty"
    )
    as_of: dt.date | None = Field(
        default=None,
        description="the date customers are scored as of; default data.as_of (--as-of overrides both)",
    )
    output: str = "outputs/predictions.parquet"
    open_only: bool = Field(
        default=False,
        description="score only entities still open at the as-of date: not won (outcomes.won_at) or lost "
        "(outcomes.lost_at) before it; the others are listed in the rejects file as skipped and counted apart "
        "from rejects. Needs data.tables.outcomes",
    )
    max_reject_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    psi_warning: Annotated[float, Field(gt=0)] = Field(
        default=0.2,
        description="warn when a feature's population stability index exceeds this (and what sampling alone "
        "gives at the batch's row count, the drift table's psi_noise)",
    )
    n_jobs: Annotated[int, Field(ge=0, le=256)] = Field(
        default=0, description="LightGBM threads when scoring; 0 = one per CPU core available"
    )


class ReportConfig(_Strict):
    output: str = "outputs/report.html"
    lang: Literal["en", "zh"] = "en"
    entity: Literal["customer", "lead", "deal", "account"] = Field(
        default="customer",
        description="what one scored row is, in the report's words: customer (客户), lead (线索), deal (商机) "
        "or account (客户)",
    )
    top_n: Annotated[int, Field(ge=1, le=500)] = 10
    currency: str | None = Field(
        default=None,
        max_length=8,
        description="money in reasons: a symbol written before the amount (£, $) or a code after it (EUR)",
    )
    worklist_rows: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=1000,
        description="worklist rows embedded in the report (most urgent first; sortable, searchable, downloadable); "
        "the report says how many of how many and links the worklist's full CSV",
    )


class WorklistConfig(_Strict):
    """``leadtier worklist``: a due-dated call list from the latest predictions."""

    output: str = Field(
        default="outputs/worklist.parquet",
        description="the worklist (Parquet); the same rows as CSV beside it (<stem>.csv)",
    )
    service_days: dict[str, Annotated[int, Field(ge=0, le=3650)]] = Field(
        default_factory=dict,
        description="per tier, days from the plan start to the due date, e.g. {A: 7, B: 30}; "
        "tiers not listed are not put on the worklist",
    )
    close_tiers: list[str] = Field(
        default_factory=list,
        description="the tiers that mean 'closes within the horizon': their probabilities, summed, are the "
        "probability of closing; empty: the best tier",
    )
    value_column: str | None = Field(
        default=None,
        description="a column of the scoring input (or of a lookup table in tables.customers.joins, named with "
        "the join's prefix) with each customer's deal value; null: past revenue, else 1",
    )
    owner_column: str | None = Field(
        default=None,
        description="a column of the scoring input (or of a lookup table in tables.customers.joins, named with "
        "the join's prefix, e.g. the account manager of accounts.csv) naming each customer's owner; null: a "
        "column named 'owner' when there is one",
    )
    contacts_per_week: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="contacts each owner can make per week; null: no limit"
    )
    weeks: Annotated[int, Field(ge=1, le=52)] = Field(default=4, description="weeks the plan covers")
    defer_contacted_days: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="defer a customer with an interaction within this many days before the plan start; null: never",
    )
    contact_types: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None,
        description="the interaction types that are contacts by the sales team (e.g. [call, email, meeting]): the "
        "worklist's last contact and defer_contacted_days read only these; null: every interaction (in an event "
        "log of the customer's own visits, a page view is no contact)",
    )
    start: dt.date | None = Field(default=None, description="the plan's first day; default the predictions' as-of")
    lang: Literal["en", "zh"] | None = Field(
        default=None, description="the language of tiers, actions and reasons; default report.lang"
    )

    @field_validator("output")
    @classmethod
    def _parquet(cls, v: str) -> str:
        if not v.lower().endswith(".parquet"):
            raise ValueError(f"worklist.output must end in .parquet (the CSV goes beside it). Got {v!r} instead")
        return v


class ServeConfig(_Strict):
    max_request_mb: Annotated[float, Field(gt=0, le=2048)] = Field(
        default=16,
        description="largest request body `leadtier serve` reads, in MiB; a larger one is answered 413",
    )


class MlflowConfig(_Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "leadtier"
    model_name: str = "leadtier"


class Config(_Strict):
    name: str
    seed: int = 42
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="where `features` and `predict` run; --engine overrides it"
    )
    spark_master: str = Field(default="local[2]", description="Spark master URL when engine is spark")
    duckdb_memory_limit: Annotated[str, Field(pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")] | None = Field(
        default=None,
        description="DuckDB's memory_limit (e.g. '3GB'); null: DuckDB's default, 80% of RAM. Lower caps the "
        "hash tables of a feature build (DuckDB spills to disk beyond it)",
    )
    data: DataConfig
    demo: DemoConfig = Field(default_factory=DemoConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    segments: SegmentConfig = Field(default_factory=SegmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    worklist: WorklistConfig = Field(default_factory=WorklistConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    schemes: dict[str, TierScheme] = Field(default_factory=dict)

    # ---------------------------------------------------------------- derived
    @property
    def scheme(self) -> TierScheme:
        return self.schemes[self.labels.scheme]

    def data_path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else Path(self.data.root) / p

    @model_validator(mode="after")
    def _money_is_numeric(self) -> Config:
        spec = self.data.tables.customers
        elsewhere = [
            t
            for t in ("transactions", "interactions", "labels", "outcomes", "stages")
            if getattr(self.data.tables, t, None) is not None and getattr(self.data.tables, t).money
        ]
        if elsewhere:
            raise ValueError(f"money names attributes of tables.customers only. Got money under tables.{elsewhere[0]}")
        other = [a for a in spec.money if a not in spec.numeric]
        if other:
            raise ValueError(
                f"tables.customers.money names {other}, which tables.customers.numeric does not list: {spec.numeric}"
            )
        return self

    @model_validator(mode="after")
    def _attribute_words_of_attributes(self) -> Config:
        spec = self.data.tables.customers
        listed = [*spec.categorical, *spec.numeric]
        unknown = [a for a in self.features.attribute_words if a not in listed]
        if unknown:
            raise ValueError(
                f"features.attribute_words names {unknown}, which tables.customers does not list under categorical "
                f"or numeric: {listed}"
            )
        return self

    def words(self) -> dict[str, dict[str, str]]:
        """The words of reasons and the report: ``features.type_words`` by interaction type and
        ``features.attribute_words`` by feature column (``cust_<slug>``)."""
        from leadtier.features.queries import slug

        named = {f"cust_{slug(a)}": dict(w) for a, w in self.features.attribute_words.items()}
        return {**{t: dict(w) for t, w in self.features.type_words.items()}, **named}

    @model_validator(mode="after")
    def _worklist_tiers_known(self) -> Config:
        if self.labels.scheme not in self.schemes:
            return self  # _scheme_known says so
        levels = self.scheme.codes
        for key, named in (
            ("service_days", list(self.worklist.service_days)),
            ("close_tiers", self.worklist.close_tiers),
        ):
            bad = [t for t in named if t not in levels]
            if bad:
                raise ValueError(
                    f"worklist.{key} names tiers that are not levels of scheme {self.labels.scheme!r} "
                    f"({levels}). Got {bad} instead"
                )
        return self

    @model_validator(mode="after")
    def _open_only_has_outcomes(self) -> Config:
        if self.predict.open_only and self.data.tables.outcomes is None:
            raise ValueError(
                "predict.open_only needs data.tables.outcomes (customer_id, won_at, lost_at) to tell closed entities "
                "from open ones. Got no outcomes table instead"
            )
        return self

    @model_validator(mode="after")
    def _rules_give_levels(self) -> Config:
        codes = self.schemes[self.labels.scheme].codes if self.labels.scheme in self.schemes else None
        bad = [r.tier for r in self.labels.rules if codes is not None and r.tier not in codes]
        if bad:
            raise ValueError(
                f"labels.rules tiers must be levels of scheme {self.labels.scheme!r} {codes}. Got {bad} instead"
            )
        return self

    @model_validator(mode="after")
    def _scheme_known(self) -> Config:
        if self.labels.scheme not in self.schemes:
            where = "" if BUILTIN_SCHEMES.is_file() else f" (the built-in schemes, {BUILTIN_SCHEMES}, are not there)"
            raise ValueError(
                f"labels.scheme must be one of {sorted(self.schemes)}{where}. Got {self.labels.scheme!r} instead"
            )
        levels = set(self.scheme.codes)
        bad = sorted({v for v in self.labels.mapping.values() if v not in levels})
        if bad:
            raise ValueError(f"labels.mapping targets {bad} are not levels of scheme {self.labels.scheme!r}")
        oc, k = self.labels.outcome, len(self.scheme.codes)
        if self.features.entity_as_of_days and not (self.labels.source == "outcome" and oc.kind == "days_to_win"):
            raise ValueError(
                "features.entity_as_of_days describes each entity as of its own start, which only labels.outcome.kind "
                "'days_to_win' measures from: every other label is as of data.as_of, and so are the features. "
                f"Remove it, or label with days_to_win. Got labels.source {self.labels.source!r}"
                + (f" with labels.outcome.kind {oc.kind!r}" if self.labels.source == "outcome" else "")
                + " instead"
            )
        if self.labels.source == "outcome" and oc.kind == "days_to_win":
            self._entity_clock_fits()
        elif self.labels.source == "outcome":
            if self.data.tables.transactions is None:
                raise ValueError("labels.source 'outcome' needs data.tables.transactions")
            need, what = {
                "days_to_next_purchase": (len(oc.thresholds_days) + 2, "thresholds_days + 2"),
                "revenue_next_days": (len(oc.cut_points) + 1, "cut_points + 1"),
                "purchase_stage": (4, "loyal, repeat, first-time, prospect: the built-in scheme purchase_stage"),
            }[oc.kind]
            if need != k:
                raise ValueError(
                    f"labels.outcome: scheme {self.labels.scheme!r} has {k} levels but {oc.kind} makes {need} ({what})"
                )
            if oc.kind == "days_to_next_purchase" and oc.thresholds_days and oc.thresholds_days[-1] >= oc.horizon_days:
                raise ValueError(
                    f"labels.outcome.horizon_days ({oc.horizon_days}) must exceed the last threshold "
                    f"({oc.thresholds_days[-1]})"
                )
        if self.labels.source == "outcome" and oc.kind in ("days_to_win", "days_to_next_purchase"):
            self._windows_fit()
        if self.train.primary_metric in ("roc_auc", "pr_auc") and k != 2:
            raise ValueError(
                f"train.primary_metric {self.train.primary_metric!r} needs a two-level scheme; "
                f"{self.labels.scheme!r} has {k} levels"
            )
        bands = self.train.grade_bands
        if bands and min(bands.values()) != 0:
            raise ValueError(
                f"train.grade_bands must have a band starting at 0 so every score gets a grade. Got {bands} instead"
            )
        cm = self.train.cost_matrix
        if cm is not None and (len(cm) != k or any(len(r) != k for r in cm)):
            raise ValueError(f"train.cost_matrix must be {k}x{k} for the {k} levels of {self.labels.scheme!r}")
        if self.train.model != "classifier":
            self._survival_fits()
        if self.train.evaluation == "backtest" and not self.snapshots.eval_as_of:
            raise ValueError("train.evaluation 'backtest' needs snapshots.train_as_of and snapshots.eval_as_of")
        return self

    def _windows_fit(self) -> None:
        """The days a scheme's level names promise (``within_days``) are the label's windows: a tier named
        'closes within 1 month' is not labelled by a 14-day window."""
        oc = self.labels.outcome
        wrong = self.scheme.window_mismatches([*oc.thresholds_days, oc.horizon_days])
        if not wrong:
            return
        n = len(oc.thresholds_days)
        thresholds, horizon, said = list(oc.thresholds_days), oc.horizon_days, []
        for i, lv, given in wrong:
            key = f"thresholds_days[{i}] is {given}" if i < n else f"horizon_days is {given}" if i == n else "no window"
            said.append(f"{lv.code} ({lv.en!r}) promises {lv.within_days} days, {key}")
            if i < n:
                thresholds[i] = lv.within_days
            elif i == n:
                horizon = lv.within_days
        raise ValueError(
            f"labels.outcome: the windows do not match the days scheme {self.labels.scheme!r} names its levels by: "
            f"{'; '.join(said)}. Set thresholds_days: {thresholds} and horizon_days: {horizon}, or add a scheme "
            "under schemes: whose names say your windows (see docs/config.md)"
        )

    def _survival_fits(self) -> None:
        """train.model survival or best: time-to-event labels and evaluation rows apart from training rows."""
        kinds = ("days_to_next_purchase", "days_to_win")
        if self.labels.source != "outcome" or self.labels.outcome.kind not in kinds:
            raise ValueError(
                f"train.model {self.train.model!r} needs time-to-event labels: labels.source outcome with "
                f"labels.outcome.kind one of {list(kinds)}. "
                f"Got {self.labels.source} / {self.labels.outcome.kind} instead"
            )
        if self.train.evaluation == "kfold":
            raise ValueError(
                f"train.model {self.train.model!r} needs evaluation rows apart from the training rows: "
                "train.evaluation backtest, ordered_holdout or holdout. Got kfold instead"
            )

    def _entity_clock_fits(self) -> None:
        """labels.outcome.kind days_to_win: an outcomes table, thresholds + 2 levels, features as of each
        entity's start (only the customers family: event families are as of one snapshot date)."""
        oc, k = self.labels.outcome, len(self.scheme.codes)
        if self.data.tables.outcomes is None:
            raise ValueError("labels.outcome.kind 'days_to_win' needs data.tables.outcomes (customer_id, won_at)")
        if len(oc.thresholds_days) + 2 != k:
            raise ValueError(
                f"labels.outcome: scheme {self.labels.scheme!r} has {k} levels but days_to_win makes "
                f"{len(oc.thresholds_days) + 2} (thresholds_days + 2)"
            )
        if oc.thresholds_days and oc.thresholds_days[-1] >= oc.horizon_days:
            raise ValueError(
                f"labels.outcome.horizon_days ({oc.horizon_days}) must exceed the last threshold "
                f"({oc.thresholds_days[-1]})"
            )
        clocked = ("customers", *ENTITY_CLOCK_FAMILIES)
        if self.features.families[:1] != ["customers"] or not set(self.features.families) <= set(clocked):
            raise ValueError(
                "labels.outcome.kind 'days_to_win' takes features as of each entity's own start: features.families "
                f"must be [customers] (attributes known at the start), optionally followed by "
                f"{list(ENTITY_CLOCK_FAMILIES)} (as of the start + features.entity_as_of_days). "
                f"Got {self.features.families} instead"
            )
        if self.features.entity_as_of_days and not set(self.features.families) & set(ENTITY_CLOCK_FAMILIES):
            raise ValueError(
                f"features.entity_as_of_days ({self.features.entity_as_of_days}) sets the day after each entity's "
                f"start that the {list(ENTITY_CLOCK_FAMILIES)} families describe, and features.families has neither: "
                f"add one, or remove features.entity_as_of_days. Got {self.features.families} instead"
            )
        if self.train.evaluation == "backtest":
            raise ValueError(
                "labels.outcome.kind 'days_to_win' has one evaluation date (data.as_of): evaluate in time order with "
                "train.evaluation ordered_holdout and train.order_by created_at"
            )


# --------------------------------------------------------------------------- loading


def _as_written(loc: tuple, raw: Any) -> tuple:
    """``loc`` as the config writes it: a table given by ``path`` is read as ``files`` with one entry,
    so ``...customers.files.0.date_format`` is ``...customers.date_format`` there."""
    node, out, i = raw, [], 0
    while i < len(loc):
        part = loc[i]
        if part == "files" and loc[i + 1 : i + 2] == (0,) and isinstance(node, dict) and node.get("path"):
            i += 2  # the one file's keys sit beside `path`
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else None
        i += 1
    return tuple(out)


def _format_errors(header: str, err: ValidationError, prefix: tuple[str, ...] = (), raw: Any = None) -> str:
    """The problem on the ``header``'s line, or one line per problem under it when there are several;
    ``prefix`` is where the validated object sits in the config; ``raw``: the config as written."""
    lines = [header]
    for e in err.errors():
        loc = _as_written((*prefix, *e["loc"]), raw)
        key = ".".join(str(p) for p in loc) or "(top level)"
        if len(loc) >= 2 and loc[-1] == "[key]":  # a mapping's key, not its value: pydantic adds the key itself
            key = f"{'.'.join(str(p) for p in loc[:-2])} (a key)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = loc[:-1]
            allowed = _allowed_keys(parent)
            if allowed:
                msg += f"; allowed keys here: {', '.join(allowed)}"
        elif e["type"] == "literal_error" and "expected" in e.get("ctx", {}):
            msg = f"must be {e['ctx']['expected']}. Got {e.get('input')!r} instead"
            if loc and loc[-1] == "encoding":
                msg += "; convert text in another encoding to UTF-8 first, e.g. iconv -f EUC-KR -t UTF-8"
        elif e["type"] == "value_error":  # our validators' own words, without pydantic's prefix
            msg = msg.removeprefix("Value error, ")
        if e["type"] in ("string_type", "literal_error") and isinstance(e.get("input"), bool):
            word = "yes" if e["input"] else "no"
            msg += f"; YAML reads an unquoted yes/no, on/off or true/false as {e['input']}: quote it ('{word}')"
        elif e["type"] == "string_type" and isinstance(e.get("input"), int | float):
            msg += f". Got the number {e['input']!r} instead: quote it ('{e['input']}')"
        elif e["type"] == "invalid_key" and isinstance(e.get("input"), bool):
            key = f"{'.'.join(str(p) for p in loc[:-1])} (a key)"
            word = "on" if e["input"] else "off"
            msg = f"YAML reads an unquoted on/off, yes/no or true/false key as {e['input']}: quote it ('{word}')"
            if "joins" in loc:
                msg += "; a join's key column is `by:`"
        lines.append(f"  {key}: {msg}" if loc else f"  {msg}")  # a whole-config check names its keys itself
    return f"{header} {lines[1].strip()}" if len(lines) == 2 else "\n".join(lines)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else (args[0] if args else None)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser says is wrong and where, on one line (its own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    words = "; ".join(str(w) for w in (getattr(exc, "context", None), getattr(exc, "problem", None)) if w)
    words = words or " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {words}" if mark is not None else words


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (not the last one
    silently), and a date that does not exist (2026-06-31) stays text, for the schema to name its key."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base': merged keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool):
                    continue
                if (type(key), key) in seen:  # 1 and true are different keys
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                    )
                seen.add((type(key), key))
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _ConfigLoader.construct_yaml_timestamp)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}; "
            "save it as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level. Got {type(raw).__name__}")
    return raw


def load_config(
    path: str | Path,
    data_root: str | None = None,
    as_of: dt.date | None = None,
    schemes_file: str | Path | None = None,
) -> Config:
    """Read, merge with the built-in tier schemes and validate one YAML config.

    The data root is taken from, in order: ``data_root``, ``$LEADTIER_DATA_ROOT``, the file.
    """
    path = Path(path)
    raw = _read_yaml(path)
    # built-in schemes, then a schemes.yaml beside the config (or ``schemes_file``), then the config's own
    files = dict.fromkeys(
        p.resolve() for p in (BUILTIN_SCHEMES, Path(schemes_file) if schemes_file else path.parent / "schemes.yaml")
    )
    shared = {k: v for f in files if f.is_file() for k, v in (_read_yaml(f).get("schemes") or {}).items()}
    user_schemes = raw.get("schemes") or {}
    if not isinstance(user_schemes, dict):
        raise ConfigError(f"invalid config {path}: schemes: must be a mapping of scheme name -> scheme")
    raw["schemes"] = {**shared, **user_schemes}
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    if root:
        raw.setdefault("data", {})
        if isinstance(raw["data"], dict):
            raw["data"]["root"] = root
    if as_of is not None and isinstance(raw.get("data"), dict):
        raw["data"]["as_of"] = as_of
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(f"invalid config {path}:", err, raw=raw)) from None


def override(cfg: Config, key: str, value: Any, source: str | None = None) -> None:
    """Set the dotted config ``key`` (``train.tuning.n_trials``) to ``value``, checked like the YAML file.

    The whole config is validated with the new value first (the cross-field rules included), so a
    bad value raises a :class:`ConfigError` naming the key (and ``source``, e.g. ``--n-trials``) and
    leaves ``cfg`` as it was.
    """
    *parents, name = key.split(".")
    target: Any = cfg
    for i, part in enumerate(parents):
        target = getattr(target, part, None)
        if not isinstance(target, BaseModel):
            raise ConfigError(f"{'.'.join(parents[: i + 1])!r} is not a section of the config. Got key {key!r} instead")
    raw = cfg.model_dump()
    node = raw
    for part in parents:
        node = node[part]
    node[name] = value
    try:
        checked: Any = Config.model_validate(raw)
    except ValidationError as err:
        where = f" (from {source})" if source else ""
        raise ConfigError(_format_errors(f"invalid value {value!r} for {key}{where}:", err)) from None
    for part in parents:
        checked = getattr(checked, part)
    setattr(target, name, getattr(checked, name))


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, for editors that complete and check YAML."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Config.model_json_schema()}
    schema["title"] = "leadtier config"
    # data.root may come from --data-root or $LEADTIER_DATA_ROOT instead of the file
    data = schema["$defs"]["DataConfig"]
    data["required"] = [k for k in data["required"] if k != "root"]
    return schema


def today(cfg: Config, now: dt.datetime | None = None) -> dt.date:
    """The date in ``data.time_zone`` (UTC unless set) at ``now`` (default: this moment), whatever the
    machine's own time zone: one moment, one date."""
    from zoneinfo import ZoneInfo

    return (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(cfg.data.time_zone)).date()
