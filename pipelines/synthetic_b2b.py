"""Deterministic synthetic B2B pipeline data: accounts, contacts, opportunities, a stage log and activities.

``generate`` returns the tables of a CRM export taken on ``as_of`` (nothing dated on or after it is in the
export: wins, losses, stage changes and activities still to come are not known yet). The same
``(n_opportunities, seed, as_of, history_days)`` always gives the same data. No I/O and nothing happens at
import time. Contact names and e-mails are fake personal data with no signal.

Generative story (what a time-to-win model has to recover)
----------------------------------------------------------
1. Accounts have a segment (SMB, mid-market, enterprise: the sales cycle's base length, 50 / 110 / 220 days),
   an industry (some buy faster), a region and a head count. Each has two contacts with a seniority;
   an opportunity's primary contact is one of them (an executive sponsor speeds a deal up).
2. Each opportunity is created on a day of the last ``history_days`` and has an owner (reps differ a
   little), a lead source and a product. A hidden heat = source + seniority + industry + owner effects +
   noise decides whether it is won (most hot deals, few cold ones) and how fast: days to win = the segment's
   cycle x exp(-0.5 heat) x lognormal noise, never under ``MIN_CYCLE_DAYS``. A deal not won is lost after
   a while, or (15 %) stalls and is never closed.
3. Stage log: every deal enters ``prospecting`` on its creation and moves through qualification, proposal
   and negotiation at increasing fractions of its open span (a deal not won stops early); 10 % step back once. So
   after two weeks a fast deal is further along than a slow one. A closed deal gets a closed_won or
   closed_lost row.
4. Activities (call, email, meeting, demo) arrive while the deal is open at a rate that grows with heat and
   as the deal matures; hot deals take a few more meetings and demos.
No deal closes within its first ``MIN_CYCLE_DAYS`` days, so features of its first two weeks never see its
outcome.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

STAGES = ("prospecting", "qualification", "proposal", "negotiation")
CLOSED = ("closed_won", "closed_lost")
MIN_CYCLE_DAYS = 15  # no deal closes sooner: above configs/demo_b2b.yaml's features.entity_as_of_days (14)
SEGMENTS = ("smb", "mid_market", "enterprise")
SEGMENT_P = (0.45, 0.35, 0.2)
SEGMENT_CYCLE = (50.0, 110.0, 220.0)
SEGMENT_EMPLOYEES = (40, 400, 5000)
INDUSTRIES = ("software", "manufacturing", "finance", "healthcare", "retail", "logistics")
INDUSTRY_HEAT = (0.3, 0.0, -0.1, -0.3, 0.2, 0.0)
REGIONS = ("north", "south", "east", "west")
SENIORITY = ("c_level", "vp", "director", "manager", "individual")
SENIORITY_P = (0.1, 0.15, 0.25, 0.3, 0.2)
SENIORITY_HEAT = (0.6, 0.4, 0.1, -0.1, -0.4)
SOURCES = ("inbound", "referral", "partner", "outbound", "event")
SOURCE_P = (0.3, 0.15, 0.15, 0.3, 0.1)
SOURCE_HEAT = (0.2, 0.6, 0.3, -0.5, 0.0)
PRODUCTS = ("core", "pro", "suite")
PRODUCT_AMOUNT = (8_000.0, 25_000.0, 90_000.0)
OWNERS = tuple(f"rep_{k:02d}" for k in range(1, 9))
ACTIVITY_TYPES = ("call", "email", "meeting", "demo")
FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Wei", "Li", "Ana", "Omar")
LAST = ("Smith", "Chen", "Garcia", "Müller", "Okafor", "Wang", "Novak", "Silva", "Kim", "Rossi")
_DAY_US = 86_400_000_000


def generate(
    n_opportunities: int = 5000, seed: int = 42, as_of: dt.date = dt.date(2026, 6, 30), history_days: int = 730
) -> dict[str, pd.DataFrame]:
    """The tables of the export as of ``as_of``: accounts, contacts, opportunities (with won_date and
    lost_date, empty while open), stage_log and activities; ``open_opportunities``: the opportunities
    still open on ``as_of`` (the ones to score)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(18,)))
    accounts, contacts = _accounts(rng, max(10, n_opportunities // 4))
    opp = _opportunities(rng, n_opportunities, accounts, contacts, as_of, history_days)
    stages = _stage_log(rng, opp)
    activities = _activities(rng, opp)
    end = pd.Timestamp(as_of)
    stages = stages[stages["entered_at"] < end].reset_index(drop=True)
    activities = activities[activities["ts"] < end].reset_index(drop=True)
    activities.insert(0, "activity_id", [f"ACT{k + 1:07d}" for k in range(len(activities))])
    for col in ("won_date", "lost_date"):  # not known yet on as_of
        opp[col] = opp[col].where(opp[col] < end)
    hidden = ["heat", "cycle", "closes_after", "won", "stalled"]
    opportunities = opp.drop(columns=hidden)
    still_open = opportunities["won_date"].isna() & opportunities["lost_date"].isna()
    return {
        "accounts": accounts,
        "contacts": contacts,
        "opportunities": opportunities,
        "stage_log": stages,
        "activities": activities,
        "open_opportunities": opportunities[still_open].drop(columns=["won_date", "lost_date"]).reset_index(drop=True),
    }


def _accounts(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    seg = rng.choice(len(SEGMENTS), n, p=SEGMENT_P)
    ids = np.array([f"ACC{k + 1:05d}" for k in range(n)])
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "segment": np.asarray(SEGMENTS)[seg],
            "industry": np.asarray(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), n)],
            "region": np.asarray(REGIONS)[rng.integers(0, len(REGIONS), n)],
            "employees": np.round(np.asarray(SEGMENT_EMPLOYEES)[seg] * rng.lognormal(0, 0.5, n)).astype(np.int64),
        }
    )
    m = 2 * n
    first = np.asarray(FIRST)[rng.integers(0, len(FIRST), m)]
    last = np.asarray(LAST)[rng.integers(0, len(LAST), m)]
    contact_ids = np.array([f"CON{k + 1:06d}" for k in range(m)])
    contacts = pd.DataFrame(
        {
            "contact_id": contact_ids,
            "account_id": np.repeat(ids, 2),
            "seniority": np.asarray(SENIORITY)[rng.choice(len(SENIORITY), m, p=SENIORITY_P)],
            "name": np.char.add(np.char.add(first, " "), last),
            "email": [f"{f.lower()}.{k + 1}@example.com" for k, f in enumerate(first)],
        }
    )
    return accounts, contacts


def _opportunities(rng, n: int, accounts: pd.DataFrame, contacts: pd.DataFrame, as_of: dt.date, history_days: int):
    acc = rng.zipf(1.6, n) % len(accounts)  # a few accounts carry many deals
    con = 2 * acc + rng.integers(0, 2, n)
    src, prod, owner = rng.choice(len(SOURCES), n, p=SOURCE_P), rng.integers(0, 3, n), rng.integers(0, 8, n)
    seg = pd.Index(SEGMENTS).get_indexer(accounts["segment"].to_numpy()[acc])
    ind = pd.Index(INDUSTRIES).get_indexer(accounts["industry"].to_numpy()[acc])
    sen = pd.Index(SENIORITY).get_indexer(contacts["seniority"].to_numpy()[con])
    heat = (
        np.asarray(SOURCE_HEAT)[src] + np.asarray(SENIORITY_HEAT)[sen] + np.asarray(INDUSTRY_HEAT)[ind]
        + np.linspace(-0.2, 0.2, len(OWNERS))[owner] + rng.normal(0, 0.7, n)
    )  # fmt: skip
    won = rng.random(n) < 1 / (1 + np.exp(-(0.1 + 1.3 * heat)))
    cycle = np.asarray(SEGMENT_CYCLE)[seg] * np.exp(-0.5 * heat + rng.normal(0, 0.45, n)) * (1 + 0.15 * prod)
    stalled = ~won & (rng.random(n) < 0.15)
    closes_after = np.maximum(MIN_CYCLE_DAYS, np.where(won, cycle, MIN_CYCLE_DAYS + rng.exponential(80, n)))
    created = pd.Timestamp(as_of) - pd.to_timedelta(rng.integers(1, history_days + 1, n), unit="D")
    created = created + pd.to_timedelta(rng.integers(8 * 3600, 18 * 3600, n), unit="s")
    closed_at = created + pd.to_timedelta(np.round(closes_after * 86400), unit="s")
    return pd.DataFrame(
        {
            "opportunity_id": [f"OPP{k + 1:06d}" for k in range(n)],
            "account_id": accounts["account_id"].to_numpy()[acc],
            "contact_id": contacts["contact_id"].to_numpy()[con],
            "owner": np.asarray(OWNERS)[owner],
            "lead_source": np.asarray(SOURCES)[src],
            "product": np.asarray(PRODUCTS)[prod],
            "amount": np.round(np.asarray(PRODUCT_AMOUNT)[prod] * (1 + seg) * rng.lognormal(0, 0.4, n), 2),
            "created_at": created,
            "won_date": closed_at.where(won),
            "lost_date": closed_at.where(~won & ~stalled),
            "heat": heat,
            "cycle": cycle,
            "closes_after": closes_after,
            "won": won,
            "stalled": stalled,
        }
    )


def _stage_log(rng, opp: pd.DataFrame) -> pd.DataFrame:
    """Stage entries at increasing fractions of each deal's open span (to its win or loss; a stalled deal:
    its would-be cycle); a deal not won stops at a random stage, 10 % step back once and forward again."""
    n, won, stalled = len(opp), opp["won"].to_numpy(), opp["stalled"].to_numpy()
    fractions = np.sort(rng.uniform(0.05, 0.9, (n, len(STAGES) - 1)), axis=1)
    reach = np.where(won, len(STAGES), rng.integers(1, len(STAGES) + 1, n))  # how many stages a deal enters
    span = np.where(stalled, opp["cycle"].to_numpy() * rng.uniform(1.0, 2.0, n), opp["closes_after"].to_numpy())
    rows = [(np.arange(n), np.zeros(n), np.zeros(n, dtype=int))]
    for k in range(1, len(STAGES)):
        enter = np.flatnonzero(reach > k)
        rows.append((enter, fractions[enter, k - 1] * span[enter], np.full(enter.size, k)))
    back = rng.random(n) < 0.10
    for k in range(1, len(STAGES)):  # back from stage k (the last one entered) to k - 1, then forward
        at = np.flatnonzero(back & (reach == k + 1))
        entered = fractions[at, k - 1] * span[at]
        rows += [
            (at, entered + 0.4 * (span[at] - entered), np.full(at.size, k - 1)),
            (at, entered + 0.7 * (span[at] - entered), np.full(at.size, k)),
        ]
    at = np.flatnonzero(~stalled)
    rows.append((at, span[at], np.where(won[at], len(STAGES), len(STAGES) + 1)))
    idx, days, stage = (np.concatenate(parts) for parts in zip(*rows, strict=True))
    log = pd.DataFrame(
        {
            "opportunity_id": opp["opportunity_id"].to_numpy()[idx],
            "stage": np.asarray((*STAGES, *CLOSED))[stage],
            "entered_at": opp["created_at"].to_numpy()[idx] + pd.to_timedelta(np.round(days * 86400), unit="s"),
        }
    )
    return log.sort_values(["opportunity_id", "entered_at"], kind="stable").reset_index(drop=True)


def _activities(rng, opp: pd.DataFrame) -> pd.DataFrame:
    """Activities while each deal is open (a stalled deal: for twice its cycle), more for hot deals and
    more as a deal matures; hot deals take more meetings and demos."""
    heat = opp["heat"].to_numpy()
    open_days = np.where(opp["stalled"], opp["cycle"] * 2, opp["closes_after"].to_numpy())
    counts = rng.poisson(0.12 * np.exp(0.5 * heat) * open_days)
    idx = np.repeat(np.arange(len(opp)), counts)
    days = open_days[idx] * np.sqrt(rng.random(idx.size))  # a rising density over the open days
    u = rng.random(idx.size)
    kind = np.select([u < 0.35, u < 0.75, u < 0.9 + 0.05 * np.tanh(heat[idx])], [0, 1, 2], 3)
    typical = np.array([600.0, 1.0, 1800.0, 2700.0])[kind]
    duration = np.where(kind == 1, np.nan, np.round(typical * rng.lognormal(0, 0.4, idx.size)))
    frame = pd.DataFrame(
        {
            "opportunity_id": opp["opportunity_id"].to_numpy()[idx],
            "ts": opp["created_at"].to_numpy()[idx] + pd.to_timedelta(np.round(days * 86400), unit="s"),
            "type": np.asarray(ACTIVITY_TYPES)[kind],
            "duration_s": duration,
        }
    )
    return frame.sort_values(["opportunity_id", "ts"], kind="stable").reset_index(drop=True)
