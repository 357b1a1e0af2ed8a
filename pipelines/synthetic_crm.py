"""Deterministic synthetic CRM demo data for leadtier.

``generate`` yields chunks of four tables (customers, transactions, interactions, labels) that look like a
B2B CRM export. The same ``(n_customers, seed, as_of, history_days, label_share)`` always gives byte-identical
data: customers are made in fixed blocks of ``BLOCK_SIZE``, each with its own RNG
(``SeedSequence(seed, spawn_key=(0, block))``), so neither ``chunk_size`` nor the machine changes the content.
No I/O and nothing happens at import time. contact_name, email and phone are fake personal data with no signal.

Generative story (the hidden behaviour a tier model has to recover)
-------------------------------------------------------------------
1. Need. Each lead has a lead source, industry, size and region, and a latent need = source + industry + size
   effects + budget (revenue far above its size peers: a threshold, so only size x revenue reveals it) +
   lead age (2-12 months old: maturing, +; over a year: stale, -) + N(0, 1). Fixed cuts on need give the true
   tier: A 8%, B 16%, C 25%, D 28%, E 23%. 8% of leads are brand new (< 30 days, few events yet).
2. Engagement. Each customer has one episode of interactions shaped by its tier: A a hot burst of calls,
   meetings, quotes and samples ending 0-7 days ago; B a warm evaluation (email clicks, webinars) ending 3-30
   days ago; C a lukewarm, mostly-reading one ending 10-60 days ago; D a hot-looking one that went silent
   60-240 days ago, or (45% of D) a stalled deal: quote requested, then silence from 25-75 days ago; E mostly
   nothing, a glance long ago, or (50% of E) a tyre-kicker reading everything right now but never talking to
   sales. 30% of A are quiet reorders: hardly any engagement, but a buyer whose purchases speed up lately.
   Timings stretch by industry (retail x0.5 ... education x3) and size (x0.7 ... x1.6), so "days since the
   last touch" means different tiers in different segments; volume scales with size and a lognormal factor;
   the same act means different things per segment (MIX_RULES: e.g. large firms' procurement asks for quotes
   early, small firms ask for one when buying). D (and some C) keep opening nurture mails.
3. Noise for everyone: newsletter opens (fewer for E) and casual browsing over the whole tenure.
4. Purchases. About 40% have bought (more via partners and referrals, few brand-new leads). Invoices arrive
   as a Poisson process while active: A/B/C until recently, D lapsed 3-12 months ago, E churned long ago; A
   (x2.5) and B (x1.5) buy faster in the last 45 days. 1..n lines per invoice, quantity grows with size,
   lognormal prices over 200 Zipf-popular products, ~4% of lines are returns (negative quantity and amount).
5. Realism: weekly (quiet weekends) and yearly (spring peak) seasonality, business-hours time of day, ~8%
   missing revenue, durations missing for e-mails/quotes/samples and ~2% elsewhere. About ``label_share`` of
   customers are labelled, engaged tiers more often (labelled mix ~ A 10, B 18, C 25, D 27, E 20%); like a
   busy rep, 12% of labels sit one tier off and 3% are random.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator

import numpy as np
import pandas as pd

BLOCK_SIZE = 10_000  # customers per RNG block (fixed: makes output independent of chunk_size)
TIERS = ("A", "B", "C", "D", "E")
TIER_MIX = (0.08, 0.16, 0.25, 0.28, 0.23)  # true mix; labelled mix ~ A 10, B 18, C 25, D 27, E 20
NEED_CUTS = (2.04, 1.15, 0.29, -0.67)  # latent need above cut k -> tier k (A..D), else E; calibrated to TIER_MIX

LEAD_SOURCES = ("web_form", "referral", "trade_show", "cold_call", "partner", "paid_search", "social")
SOURCE_P = (0.24, 0.12, 0.10, 0.14, 0.10, 0.18, 0.12)
SOURCE_NEED = (0.15, 0.45, 0.20, -0.45, 0.25, 0.0, -0.25)
SOURCE_BUY = (0.0, 0.10, 0.05, -0.10, 0.15, 0.0, -0.05)
INDUSTRIES = ("manufacturing", "retail", "software", "healthcare", "finance", "education", "logistics", "hospitality")
INDUSTRY_P = (0.18, 0.15, 0.16, 0.10, 0.10, 0.08, 0.13, 0.10)
INDUSTRY_NEED = (0.10, -0.10, 0.30, 0.0, 0.10, -0.30, 0.05, -0.20)
INDUSTRY_CYCLE = (1.0, 0.5, 0.7, 2.2, 1.5, 3.0, 1.0, 0.5)  # stretches episode timing
GOODS_INDUSTRIES = (0, 1, 6, 7)
DIGITAL_INDUSTRIES = (2, 4)
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SIZE_P = (0.30, 0.30, 0.22, 0.12, 0.06)
SIZE_NEED = (-0.30, -0.10, 0.10, 0.20, 0.10)
SIZE_ACTIVITY = (0.7, 0.85, 1.0, 1.4, 2.0)
SIZE_REVENUE_MUSD = (0.5, 3.0, 20.0, 120.0, 900.0)
SIZE_CYCLE = (0.7, 0.85, 1.0, 1.3, 1.6)  # bigger firms decide more slowly
SIZE_QTY_LOGMEAN = (0.3, 0.7, 1.1, 1.5, 2.0)
REGIONS = ("north", "south", "east", "west", "central", "overseas")
REGION_P = (0.20, 0.20, 0.22, 0.15, 0.13, 0.10)
CHANNELS = ("online", "store", "phone", "distributor")
SIZE_CHANNEL_P = (
    (0.5, 0.35, 0.1, 0.05),
    (0.45, 0.3, 0.15, 0.1),
    (0.35, 0.15, 0.3, 0.2),
    (0.25, 0.05, 0.35, 0.35),
    (0.15, 0.0, 0.35, 0.5),
)
FIRST_NAMES = (
    "Wei",
    "Fang",
    "Min",
    "Jing",
    "Lei",
    "Yan",
    "Hui",
    "Jun",
    "Anna",
    "James",
    "Maria",
    "David",
    "Laura",
    "Peter",
    "Sofia",
    "Omar",
    "Priya",
    "Kenji",
    "Elena",
    "Lucas",
)
LAST_NAMES = (
    "Li",
    "Wang",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Huang",
    "Smith",
    "Garcia",
    "Muller",
    "Rossi",
    "Kim",
    "Tanaka",
    "Singh",
    "Novak",
    "Silva",
    "Brown",
    "Dubois",
    "Ivanova",
)
CN_MOBILE_PREFIX = ("130", "138", "139", "150", "186", "188")

NEW_LEAD_SHARE, NEW_LEAD_DAYS = 0.08, 30
REVENUE_SIGMA, REVENUE_MISSING = 0.7, 0.08
BUDGET_THRESHOLD, BUDGET_NEED = 0.35, 1.0  # revenue well above size peers (log-ratio > threshold) means budget
TENURE_NEED = ((60, 0.0), (365, 0.5), (10**9, -0.5))  # (max tenure days, need effect): maturing vs stale leads
ACTIVITY_SIGMA = 0.3

INTERACTION_TYPES = (
    "web_visit",
    "page_view",
    "email_open",
    "email_click",
    "form_submit",
    "call",
    "meeting",
    "quote_request",
    "sample_sent",
    "webinar",
)
EPISODE_MIX = np.array(
    [  # rows: episode profiles; columns: INTERACTION_TYPES
        [0.06, 0.20, 0.04, 0.10, 0.06, 0.18, 0.15, 0.12, 0.06, 0.03],  # A: hot, closing
        [0.10, 0.20, 0.10, 0.25, 0.04, 0.07, 0.02, 0.02, 0.00, 0.20],  # B: evaluating
        [0.20, 0.20, 0.30, 0.10, 0.00, 0.03, 0.00, 0.00, 0.00, 0.17],  # C: interested
        [0.10, 0.22, 0.06, 0.12, 0.05, 0.13, 0.10, 0.12, 0.04, 0.06],  # D: looked hot, went silent
        [0.40, 0.35, 0.20, 0.05, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # E: a glance long ago
        [
            0.25,
            0.45,
            0.00,
            0.10,
            0.00,
            0.00,
            0.00,
            0.00,
            0.00,
            0.20,
        ],  # E: tyre-kicker reading everything, never talks to sales
        [0.06, 0.18, 0.05, 0.10, 0.05, 0.16, 0.15, 0.15, 0.05, 0.05],  # D: stalled deal, quote requested then silence
    ]
)
EPISODE_END = ((0, 7), (3, 30), (10, 60), (60, 240), (120, 700), (0, 15), (25, 75))  # days ago the episode ended
EPISODE_LEN = ((10, 45), (30, 100), (60, 200), (20, 120), (3, 30), (30, 90), (15, 45))  # days
EPISODE_PROB = (1.0, 0.97, 0.92, 0.90, 0.25, 1.0, 1.0)
EPISODE_RATE = (0.35, 0.14, 0.055, 0.09, 0.10, 0.22, 0.22)  # events per day at activity 1
EPISODE_SIGMA = 0.6
TYRE_KICKER_SHARE, STALLED_SHARE = 0.50, 0.45  # of tier E, of tier D
# The same behaviour means different things per segment: (segment, type, multiplier per episode profile
# A, B, C, D, E, E-tyre-kicker, D-stalled). Goods firms want samples; webinars are demos for digital firms but
# general education for goods firms; large firms' procurement collects quotes early, small firms quote to buy.
MIX_RULES = (
    ("goods", "sample_sent", (3.0, 1.0, 1.0, 3.0, 1.0, 1.0, 3.0)),
    ("goods", "webinar", (1.0, 0.3, 2.0, 1.0, 1.0, 1.0, 1.0)),
    ("digital", "webinar", (1.0, 2.5, 0.3, 1.0, 1.0, 1.0, 1.0)),
    ("digital", "meeting", (1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5)),
    ("large", "quote_request", (1.0, 4.0, 4.0, 0.5, 1.0, 1.0, 0.5)),
    ("small", "quote_request", (1.5, 0.3, 0.3, 1.0, 1.0, 1.0, 1.0)),
)
QUIET_A_SHARE, QUIET_A_INTENSITY = 0.30, 0.10
NURTURE_SHARE, NURTURE_RATE, NURTURE_DAYS = (0.0, 0.0, 0.2, 0.6, 0.0), 0.03, 150  # D keeps reading nurture mails
NEWSLETTER_SHARE, NEWSLETTER_RATE, BROWSE_RATE = (0.7, 0.7, 0.7, 0.6, 0.15), 0.004, 0.002
DURATION_LOGMEDIAN = (
    np.log(90),
    np.log(35),
    np.nan,
    np.nan,
    np.log(120),
    np.log(300),
    np.log(2400),
    np.nan,
    np.nan,
    np.log(1800),
)
DURATION_SIGMA, DURATION_MISSING = 0.8, 0.02

BUY_PROB = (0.65, 0.60, 0.55, 0.50, 0.45)
NEW_LEAD_BUY_FACTOR = 0.3
BUY_END = ((0, 10), (0, 30), (0, 60), (90, 365), (180, 720))  # days ago of the last purchase window
BUY_RATE, BUY_SIGMA = 0.025, 0.6  # invoices per day at activity 1
BUY_BOOST, BUY_BOOST_DAYS = (2.5, 1.5, 1.0, 1.0, 1.0), 45
EXTRA_LINES = (0.8, 1.0, 1.3, 1.7, 2.2)  # Poisson extra lines per invoice, by size
N_PRODUCTS, PRODUCT_ZIPF, PRICE_LOGMEAN, PRICE_SIGMA = 200, 1.1, 3.5, 1.0
RETURN_SHARE, PREFERRED_CHANNEL_SHARE = 0.04, 0.75

LABEL_WEIGHT = (1.3, 1.15, 1.0, 0.9, 0.8)
LABEL_ADJACENT_NOISE, LABEL_RANDOM_NOISE = 0.12, 0.03

WEEKLY_INTERACTIONS = (1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.25)  # Monday..Sunday
WEEKLY_TRANSACTIONS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.5)
YEARLY_AMPLITUDE, YEARLY_PEAK_DAY = 0.15, 75  # day of year with the most activity
HOUR_MEAN, HOUR_SD = 13.5, 3.0

_US_PER_DAY = 86_400 * 1_000_000
_SD = np.dtypes.StringDType()


def generate(
    n_customers: int,
    seed: int,
    as_of: datetime.date,
    history_days: int = 730,
    label_share: float = 0.30,
    chunk_size: int = 100_000,
) -> Iterator[dict[str, pd.DataFrame]]:
    """Yields chunks; each chunk is a dict with keys 'customers', 'transactions', 'interactions', 'labels' (DataFrames).

    Each chunk holds ``chunk_size`` consecutive customers (the last may be smaller) and all their rows.
    """
    if n_customers < 0 or chunk_size < 1 or history_days < 1 or not 0.0 <= label_share <= 1.0:
        raise ValueError("need n_customers >= 0, chunk_size >= 1, history_days >= 1, 0 <= label_share <= 1")
    as_of_day = int(np.datetime64(datetime.date(as_of.year, as_of.month, as_of.day), "D").astype(np.int64))
    return _chunks(int(n_customers), int(seed), as_of_day, int(history_days), float(label_share), int(chunk_size))


def _chunks(
    n: int, seed: int, as_of_day: int, history_days: int, label_share: float, chunk_size: int
) -> Iterator[dict[str, pd.DataFrame]]:
    cat_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    popularity = 1.0 / np.arange(1, N_PRODUCTS + 1) ** PRODUCT_ZIPF
    catalog = (
        cat_rng.permutation(popularity / popularity.sum()),
        cat_rng.lognormal(PRICE_LOGMEAN, PRICE_SIGMA, N_PRODUCTS),
    )
    width = max(7, len(str(n)))
    pending: list[dict[str, dict[str, np.ndarray]]] = []
    n_pending, next_cnum, next_invoice = 0, 0, 0
    for b in range((n + BLOCK_SIZE - 1) // BLOCK_SIZE):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, b)))
        size = min(BLOCK_SIZE, n - b * BLOCK_SIZE)
        block, n_invoices = _block(
            rng, b * BLOCK_SIZE, size, as_of_day, history_days, label_share, catalog, next_invoice
        )
        next_invoice += n_invoices
        pending.append(block)
        n_pending += size
        while n_pending >= chunk_size or (n_pending and b * BLOCK_SIZE + size == n):
            merged = {t: {c: np.concatenate([p[t][c] for p in pending]) for c in pending[0][t]} for t in pending[0]}
            cut = next_cnum + min(chunk_size, n_pending)
            head = {t: _select(cols, cols["cnum"] < cut) for t, cols in merged.items()}
            pending = [{t: _select(cols, cols["cnum"] >= cut) for t, cols in merged.items()}]
            n_pending -= cut - next_cnum
            next_cnum = cut
            yield _frames(head, as_of_day, width)


def _select(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[mask] for c, v in cols.items()}


def _events(rng, rate, lo, hi, tenure, weekly, as_of_day):
    """Poisson events at ``rate``/day uniformly in days-ago window (lo, hi] (clipped at the lead's creation),
    thinned by weekly/yearly seasonality. Returns (customer index, day number since epoch)."""
    weekly = np.asarray(weekly)
    span = np.maximum(np.minimum(hi, tenure) - lo, 0.0)
    counts = rng.poisson(rate * span * (1 + YEARLY_AMPLITUDE) / weekly.mean())
    idx = np.repeat(np.arange(rate.size), counts)
    days_ago = np.maximum(np.ceil(lo[idx] + rng.random(idx.size) * span[idx]), 1).astype(np.int64)
    day = as_of_day - days_ago
    season = 1 + YEARLY_AMPLITUDE * np.cos(2 * np.pi * (day % 365.2425 - YEARLY_PEAK_DAY) / 365.2425)
    keep = rng.random(idx.size) * (1 + YEARLY_AMPLITUDE) < weekly[(day + 3) % 7] * season
    return idx[keep], day[keep]


def _timestamps(rng, day):
    sec = np.clip(rng.normal(HOUR_MEAN, HOUR_SD, day.size) * 3600, 0, 86_399).astype(np.int64)
    return day * _US_PER_DAY + sec * 1_000_000


def _uniform(rng, bounds, codes):
    lo, hi = np.asarray(bounds, dtype=float).T
    return lo[codes] + rng.random(codes.size) * (hi - lo)[codes]


def _block(rng, first, n, as_of_day, history_days, label_share, catalog, first_invoice):
    """One block of customers as numpy arrays (codes, day numbers, microsecond timestamps).

    The draws happen in one fixed order (attributes, interactions, transactions, labels, personal
    columns): the same seed gives the same data."""
    c = _attributes(rng, n, history_days)
    interactions = _interactions(rng, c, as_of_day)
    transactions, n_invoices = _transactions(rng, c, as_of_day, catalog, first_invoice)
    labelled, noisy = _rep_labels(rng, c["tier"], label_share)
    cnum = first + np.arange(n)
    customers = dict(
        cnum=cnum,
        created=as_of_day - c["tenure"],
        src=c["src"],
        ind=c["ind"],
        size=c["size"],
        region=c["region"],
        revenue=c["revenue"],
        first=rng.integers(0, len(FIRST_NAMES), n),
        last=rng.integers(0, len(LAST_NAMES), n),
        prefix=rng.integers(0, len(CN_MOBILE_PREFIX), n),
        p1=rng.integers(0, 10_000, n),
        p2=rng.integers(0, 10_000, n),
        labelled=labelled,
        tier=noisy,
    )
    transactions["cnum"] = cnum[transactions.pop("idx")]
    interactions["cnum"] = cnum[interactions.pop("idx")]
    return {"customers": customers, "transactions": transactions, "interactions": interactions}, n_invoices


def _attributes(rng, n, history_days) -> dict[str, np.ndarray]:
    """Firmographics, tenure, the hidden need that sets the true tier, and activity."""
    src = rng.choice(len(LEAD_SOURCES), n, p=SOURCE_P)
    ind = rng.choice(len(INDUSTRIES), n, p=INDUSTRY_P)
    size = rng.choice(len(COMPANY_SIZES), n, p=SIZE_P)
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    new = rng.random(n) < NEW_LEAD_SHARE
    new_max = min(NEW_LEAD_DAYS, history_days)
    tenure = np.where(
        new, rng.integers(1, new_max + 1, n), rng.integers(min(new_max + 1, history_days), history_days + 1, n)
    )
    rel_revenue = rng.normal(0, REVENUE_SIGMA, n)
    revenue = np.round(np.asarray(SIZE_REVENUE_MUSD)[size] * np.exp(rel_revenue), 3)
    revenue[rng.random(n) < REVENUE_MISSING] = np.nan
    need = (
        np.asarray(SOURCE_NEED)[src]
        + np.asarray(INDUSTRY_NEED)[ind]
        + np.asarray(SIZE_NEED)[size]
        + BUDGET_NEED * (rel_revenue > BUDGET_THRESHOLD)
        + rng.normal(0, 1, n)
        + np.asarray(TENURE_NEED)[np.searchsorted(np.asarray(TENURE_NEED)[:, 0], tenure), 1]
    )
    tier = (need[:, None] < np.asarray(NEED_CUTS)).sum(axis=1)
    activity = np.asarray(SIZE_ACTIVITY)[size] * rng.lognormal(0, ACTIVITY_SIGMA, n)
    quiet_a = (tier == 0) & (rng.random(n) < QUIET_A_SHARE)
    return dict(
        src=src, ind=ind, size=size, region=region, new=new, tenure=tenure, revenue=revenue, tier=tier,
        activity=activity, quiet_a=quiet_a,
    )  # fmt: skip


def _episode_mix(profile, ind, size) -> np.ndarray:
    """Cumulative interaction-type shares per customer: the profile's mix, tilted by segment."""
    mix = EPISODE_MIX[profile]
    segment = {
        "goods": np.isin(ind, GOODS_INDUSTRIES),
        "digital": np.isin(ind, DIGITAL_INDUSTRIES),
        "large": size >= 3,
        "small": size <= 1,
    }
    for who, kind, mult in MIX_RULES:
        mix[:, INTERACTION_TYPES.index(kind)] *= np.where(segment[who], np.asarray(mult)[profile], 1.0)
    return np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)


def _interactions(rng, c, as_of_day) -> dict[str, np.ndarray]:
    """One tier-shaped engagement episode per customer plus tier-agnostic background (newsletters,
    browsing, nurture emails); ``idx`` is the customer's row in the block."""
    n, tier, tenure, activity = len(c["tier"]), c["tier"], c["tenure"], c["activity"]
    r = rng.random(n)
    profile = np.where((tier == 4) & (r < TYRE_KICKER_SHARE), 5, np.where((tier == 3) & (r < STALLED_SHARE), 6, tier))
    cycle = np.asarray(INDUSTRY_CYCLE)[c["ind"]] * np.asarray(SIZE_CYCLE)[c["size"]]
    end = _uniform(rng, EPISODE_END, profile) * cycle
    length = _uniform(rng, EPISODE_LEN, profile) * cycle
    intensity = (
        np.asarray(EPISODE_RATE)[profile]
        * activity
        * rng.lognormal(0, EPISODE_SIGMA, n)
        * (rng.random(n) < np.asarray(EPISODE_PROB)[profile])
        * np.where(c["quiet_a"], QUIET_A_INTENSITY, 1.0)
    )
    cum = _episode_mix(profile, c["ind"], c["size"])
    e_idx, e_day = _events(rng, intensity, end, end + length, tenure, WEEKLY_INTERACTIONS, as_of_day)
    e_type = np.minimum((rng.random(e_idx.size)[:, None] > cum[e_idx]).sum(axis=1), 9)
    zeros, whole = np.zeros(n), tenure + 0.0
    subscribed = rng.random(n) < np.asarray(NEWSLETTER_SHARE)[tier]
    n_idx, n_day = _events(rng, NEWSLETTER_RATE * subscribed, zeros, whole, tenure, WEEKLY_INTERACTIONS, as_of_day)
    b_idx, b_day = _events(rng, BROWSE_RATE * activity, zeros, whole, tenure, WEEKLY_INTERACTIONS, as_of_day)
    nurtured = rng.random(n) < np.asarray(NURTURE_SHARE)[tier]
    u_idx, u_day = _events(
        rng, NURTURE_RATE * nurtured, zeros, np.full(n, float(NURTURE_DAYS)), tenure, WEEKLY_INTERACTIONS, as_of_day
    )
    i_idx = np.concatenate([e_idx, n_idx, b_idx, u_idx])
    i_type = np.concatenate(
        [e_type, np.full(n_idx.size, 2), rng.integers(0, 2, b_idx.size), np.where(rng.random(u_idx.size) < 0.8, 2, 3)]
    )
    i_ts = _timestamps(rng, np.concatenate([e_day, n_day, b_day, u_day]))
    dur = np.exp(np.asarray(DURATION_LOGMEDIAN)[i_type] + DURATION_SIGMA * rng.normal(size=i_type.size))
    dur = np.round(dur, 1)
    dur[rng.random(dur.size) < DURATION_MISSING] = np.nan
    order = np.lexsort((i_ts, i_idx))
    return dict(idx=i_idx[order], ts=i_ts[order], type=i_type[order], dur=dur[order])


def _transactions(rng, c, as_of_day, catalog, first_invoice) -> tuple[dict[str, np.ndarray], int]:
    """Buyers purchase while active, A/B accelerate lately; invoice lines with products, channels and
    returns; ``idx`` is the customer's row in the block. Also returns the number of invoices."""
    n, tier, tenure, size, quiet_a = len(c["tier"]), c["tier"], c["tenure"], c["size"], c["quiet_a"]
    p_buy = (np.asarray(BUY_PROB)[tier] + np.asarray(SOURCE_BUY)[c["src"]]) * np.where(
        c["new"], NEW_LEAD_BUY_FACTOR, 1.0
    )
    buyer = (rng.random(n) < p_buy) | quiet_a
    rate = BUY_RATE * c["activity"] * rng.lognormal(0, BUY_SIGMA, n) * buyer
    last = _uniform(rng, BUY_END, tier)
    boost = (np.asarray(BUY_BOOST)[tier] - 1) * np.where(quiet_a, 2.0, 1.0)
    zeros = np.zeros(n)
    v1, d1 = _events(rng, rate, last, tenure + 0.0, tenure, WEEKLY_TRANSACTIONS, as_of_day)
    v2, d2 = _events(
        rng, rate * boost, zeros, np.full(n, float(BUY_BOOST_DAYS)), tenure, WEEKLY_TRANSACTIONS, as_of_day
    )
    v_idx, v_ts = np.concatenate([v1, v2]), _timestamps(rng, np.concatenate([d1, d2]))
    v_order = np.lexsort((v_ts, v_idx))
    v_idx, v_ts = v_idx[v_order], v_ts[v_order]
    preferred = (rng.random(n)[:, None] > np.cumsum(SIZE_CHANNEL_P, axis=1)[size]).sum(axis=1)
    v_channel = np.where(
        rng.random(v_idx.size) < PREFERRED_CHANNEL_SHARE,
        np.minimum(preferred[v_idx], 3),
        rng.integers(0, len(CHANNELS), v_idx.size),
    )
    lines = 1 + rng.poisson(np.asarray(EXTRA_LINES)[size[v_idx]])
    line_inv = np.repeat(np.arange(v_idx.size), lines)
    t_idx = v_idx[line_inv]
    product = rng.choice(N_PRODUCTS, line_inv.size, p=catalog[0])
    qty = np.ceil(rng.lognormal(np.asarray(SIZE_QTY_LOGMEAN)[size[t_idx]], 0.8)).astype(np.int64)
    amount = np.round(qty * catalog[1][product] * rng.lognormal(0, 0.05, qty.size), 2)
    sign = np.where(rng.random(qty.size) < RETURN_SHARE, -1, 1)
    out = dict(
        idx=t_idx, ts=v_ts[line_inv], invoice=first_invoice + line_inv, product=product,
        channel=v_channel[line_inv], qty=qty * sign, amount=amount * sign,
    )  # fmt: skip
    return out, v_idx.size


def _rep_labels(rng, tier, label_share) -> tuple[np.ndarray, np.ndarray]:
    """Which customers a rep labelled (engaged tiers more often; ``label_share`` of them overall, 1.0:
    all) and the rep's tier, with a busy rep's adjacent and random mistakes."""
    n = len(tier)
    tilt = label_share * np.asarray(LABEL_WEIGHT)[tier]  # odds tilt: keeps the share ~label_share, 1.0 -> all
    labelled = rng.random(n) * (tilt + (1 - label_share) * np.dot(TIER_MIX, LABEL_WEIGHT)) < tilt
    r = rng.random(n)
    step = np.where(rng.random(n) < 0.5, -1, 1)
    step = np.where((tier + step < 0) | (tier + step > 4), -step, step)
    noisy = np.where(r < LABEL_ADJACENT_NOISE, tier + step, tier)
    noisy = np.where(r > 1 - LABEL_RANDOM_NOISE, rng.integers(0, 5, n), noisy)
    return labelled, noisy


def _join(*parts) -> np.ndarray:
    return functools.reduce(np.strings.add, parts)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    return np.strings.add(prefix, np.strings.zfill(numbers.astype(_SD), width))


def _vocab(values, codes: np.ndarray):
    return pd.array(np.asarray(values, dtype=object), dtype="str").take(codes)


def _ts(us: np.ndarray) -> np.ndarray:
    return us.astype(np.int64).view("datetime64[us]")


def _frames(a: dict[str, dict[str, np.ndarray]], as_of_day: int, width: int) -> dict[str, pd.DataFrame]:
    c, t, i = a["customers"], a["transactions"], a["interactions"]
    first_cnum = int(c["cnum"][0]) if c["cnum"].size else 0
    cid = pd.array(_ids("C", c["cnum"] + 1, width), dtype="str")
    first = np.asarray(FIRST_NAMES, dtype=_SD)[c["first"]]
    last = np.asarray(LAST_NAMES, dtype=_SD)[c["last"]]
    email = _join(
        np.strings.lower(first), ".", np.strings.lower(last), ".", _ids("", c["cnum"] + 1, width), "@example.com"
    )
    mobile_cn = _join(
        "+86-",
        np.asarray(CN_MOBILE_PREFIX, dtype=_SD)[c["prefix"]],
        "-",
        _ids("", c["p1"], 4),
        "-",
        _ids("", c["p2"], 4),
    )
    mobile_us = _join("+1-555-", _ids("", c["p1"] % 1000, 3), "-", _ids("", c["p2"], 4))
    customers = pd.DataFrame(
        {
            "customer_id": cid,
            "created_at": _ts(c["created"] * _US_PER_DAY),
            "lead_source": _vocab(LEAD_SOURCES, c["src"]),
            "industry": _vocab(INDUSTRIES, c["ind"]),
            "company_size": _vocab(COMPANY_SIZES, c["size"]),
            "region": _vocab(REGIONS, c["region"]),
            "annual_revenue_musd": c["revenue"],
            "contact_name": pd.array(_join(first, " ", last), dtype="str"),
            "email": pd.array(email, dtype="str"),
            "phone": pd.array(np.where(c["region"] == REGIONS.index("overseas"), mobile_us, mobile_cn), dtype="str"),
        }
    )
    inv_first = int(t["invoice"][0]) if t["invoice"].size else 0
    inv_ids = pd.array(_ids("INV", np.arange(inv_first, int(t["invoice"].max(initial=-1)) + 1) + 1, 8), dtype="str")
    transactions = pd.DataFrame(
        {
            "customer_id": cid.take(t["cnum"] - first_cnum),
            "ts": _ts(t["ts"]),
            "invoice_id": inv_ids.take(t["invoice"] - inv_first),
            "product_id": _vocab([f"P{k + 1:04d}" for k in range(N_PRODUCTS)], t["product"]),
            "channel": _vocab(CHANNELS, t["channel"]),
            "quantity": t["qty"].astype(np.int64),
            "amount": t["amount"].astype(np.float64),
        }
    )
    interactions = pd.DataFrame(
        {
            "customer_id": cid.take(i["cnum"] - first_cnum),
            "ts": _ts(i["ts"]),
            "type": _vocab(INTERACTION_TYPES, i["type"]),
            "duration_s": i["dur"].astype(np.float64),
        }
    )
    lab = c["labelled"]
    labels = pd.DataFrame(
        {
            "customer_id": cid[lab],
            "tier": _vocab(TIERS, c["tier"][lab]),
            "labelled_at": _ts(np.full(int(lab.sum()), as_of_day * _US_PER_DAY, dtype=np.int64)),
        }
    )
    return {"customers": customers, "transactions": transactions, "interactions": interactions, "labels": labels}
