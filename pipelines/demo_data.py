"""Stage: write the synthetic demo CRM tables (``leadtier demo-data``).

The generator lives in :mod:`leadtier.pipelines.synthetic_crm` (pure, chunked, seeded); this stage streams its
chunks into Parquet so a million customers fit in bounded memory, and writes the unlabelled
customers as the prospects file that ``leadtier predict`` scores. ``demo.world: b2b`` writes the B2B
pipeline of :mod:`leadtier.pipelines.synthetic_b2b` instead, with the opportunities still open as the
prospects file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from leadtier.pipelines import synthetic_b2b
from leadtier.pipelines.config import Config
from leadtier.pipelines.synthetic_crm import generate

TABLES = ("customers", "transactions", "interactions", "labels")


def write_demo(cfg: Config, out_dir: str | Path | None = None, n_customers: int | None = None) -> dict[str, int]:
    """Generate and write the demo tables (``demo.world``); returns row counts per file."""
    out = Path(out_dir or cfg.data.root)
    out.mkdir(parents=True, exist_ok=True)
    n = n_customers or cfg.demo.n_customers
    if cfg.demo.world == "b2b":
        return write_b2b(cfg, out, n)
    writers: dict[str, pq.ParquetWriter] = {}
    tmp = {t: out / f".{t}.parquet.tmp" for t in (*TABLES, "prospects")}
    counts = dict.fromkeys((*TABLES, "prospects"), 0)
    prospects_path = out / cfg.demo.prospects_file
    prospects_tmp = out / f".{prospects_path.name}.tmp"
    try:
        for chunk in generate(
            n_customers=n,
            seed=cfg.seed,
            as_of=cfg.data.as_of,
            history_days=cfg.demo.history_days,
            label_share=cfg.demo.label_share,
        ):
            labelled = set(chunk["labels"]["customer_id"])
            chunk["prospects"] = chunk["customers"][~chunk["customers"]["customer_id"].isin(labelled)]
            for name, frame in chunk.items():
                if name == "prospects" and prospects_path.suffix.lower() == ".csv":
                    frame.to_csv(prospects_tmp, mode="a", header=counts[name] == 0, index=False)
                else:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(tmp[name], table.schema, compression="zstd")
                    writers[name].write_table(table)
                counts[name] += len(frame)
        for w in writers.values():
            w.close()
        for name in TABLES:
            os.replace(tmp[name], out / f"{name}.parquet")
        if prospects_path.suffix.lower() == ".csv":
            os.replace(prospects_tmp, prospects_path)
        else:
            os.replace(tmp["prospects"], prospects_path)
    finally:
        for w in writers.values():
            w.close()
        for p in [*tmp.values(), prospects_tmp]:
            p.unlink(missing_ok=True)
    return counts


def write_b2b(cfg: Config, out: Path, n: int) -> dict[str, int]:
    """The B2B pipeline's tables as Parquet files named after them, and the opportunities still open on
    ``data.as_of`` as ``demo.prospects_file`` (CSV or Parquet by its extension); each file is written
    beside its name and then renamed. Returns row counts per file."""
    tables = synthetic_b2b.generate(
        n_opportunities=n, seed=cfg.seed, as_of=cfg.data.as_of, history_days=cfg.demo.history_days
    )
    prospects = tables.pop("open_opportunities")
    targets = {out / f"{name}.parquet": frame for name, frame in tables.items()}
    targets[out / cfg.demo.prospects_file] = prospects
    try:
        for path, frame in targets.items():
            tmp = path.with_name(f".{path.name}.tmp")
            if path.suffix.lower() == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
        for path in targets:
            os.replace(path.with_name(f".{path.name}.tmp"), path)
    finally:
        for path in targets:
            path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
    return {**{name: len(frame) for name, frame in tables.items()}, "prospects": len(prospects)}
