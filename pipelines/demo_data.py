"""Stage: write the synthetic demo CRM tables (``leadtier demo-data``).

The generator lives in :mod:`leadtier.pipelines.synthetic_crm` (pure, chunked, seeded); this stage streams its
chunks into Parquet so a million customers fit in bounded memory, and writes the unlabelled
customers as the prospects file that ``leadtier predict`` scores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from leadtier.pipelines.config import Config
from leadtier.pipelines.synthetic_crm import generate

TABLES = ("customers", "transactions", "interactions", "labels")


def write_demo(cfg: Config, out_dir: str | Path | None = None, n_customers: int | None = None) -> dict[str, int]:
    """Generate and write the demo tables; returns row counts per file."""
    out = Path(out_dir or cfg.data.root)
    out.mkdir(parents=True, exist_ok=True)
    n = n_customers or cfg.demo.n_customers
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
