"""Reports: the mechanisms that generate them, each with the true chance its report is upheld.

A report's validity is decided by latent state the report itself does not show:
what kind of account the subject really is, how credible the reporter is, and
whether a real order went wrong. The raw report fields (reporter type, channel,
category) are shared across mechanisms with very different validity, so a
model has to use history and context to tell them apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features import vocabulary as V
from simulator.world import (
    CANCELLED,
    KIND,
    KINDS,
    LATE,
    NEVER,
    ON_TIME,
    PROBLEMS,
    Clock,
    Market,
    Population,
    TimedPool,
)

SCENARIOS: tuple[str, ...] = (
    "incident_behavior",
    "incident_logistics",
    "incident_scam",
    "incident_payment_fraud",
    "noise_profile",
    "noise_order",
    "spike",
    "brigading",
    "retaliatory",
    "moderator",
    "automated_detection",
    "rules_engine",
)
SCENARIO_SHARE: dict[str, float] = {
    "incident_behavior": 0.14,
    "incident_logistics": 0.12,
    "incident_scam": 0.04,
    "incident_payment_fraud": 0.03,
    "noise_profile": 0.18,
    "noise_order": 0.08,
    "spike": 0.07,
    "brigading": 0.06,
    "retaliatory": 0.05,
    "moderator": 0.06,
    "automated_detection": 0.09,
    "rules_engine": 0.08,
}
SPIKE_SIZE = (30, 120)
SPIKE_REAL_SHARE = 0.92  # the rest are misread jokes or pile-ons against an ordinary seller
SPIKE_MINUTES_MEAN, SPIKE_MINUTES_MAX = 2.0, 9.0
BRIGADE_EVENT_SIZE = (10, 40)
BRIGADE_HOURS = 1.0
AUTOMATED_LAUNCH_SHARE = 0.15  # the detector goes live this far into the period
ORDER_LOOKBACK = 20  # a complaint is about one of the seller's last orders to the reporter

CAT: dict[str, int] = {c: i for i, c in enumerate(V.CATEGORIES)}
CHANNEL: dict[str, int] = {c: i for i, c in enumerate(V.CHANNELS)}
RTYPE: dict[str, int] = {r: i for i, r in enumerate(V.REPORTER_TYPES)}
USER = -1  # reporter type follows from the reporting account's role
FAMILY_OF_CAT = np.array([V.FAMILIES.index(V.CATEGORY_FAMILY[c]) for c in V.CATEGORIES])
# Complaints about goods: whoever files them bought from the seller, so they point at an order.
GOODS_CATEGORY = np.array([
    V.CATEGORY_FAMILY[c] == "logistics" or c in ("counterfeit", "misrepresented_item", "non_delivery_scam")
    for c in V.CATEGORIES
])
FRAUD_FAMILY = V.FAMILIES.index("fraud")
LOGISTICS_FAMILY = V.FAMILIES.index("logistics")

# What each kind of bad actor gets reported for.
KIND_CATEGORY_MIX: dict[str, dict[str, float]] = {
    "abusive_streamer": {"harassment": 0.3, "hate_speech": 0.25, "threats_of_harm": 0.1, "violent_content": 0.1,
                         "explicit_content": 0.25},
    "harasser": {"harassment": 0.55, "spam": 0.2, "disruptive_auction_behavior": 0.25},
    "fraud_ring": {"shill_bidding": 0.85, "disruptive_auction_behavior": 0.15},
    "scam_seller": {"counterfeit": 0.5, "misrepresented_item": 0.5},
}
NOISE_SELLER_MIX = {"harassment": 0.18, "hate_speech": 0.1, "explicit_content": 0.08, "threats_of_harm": 0.04,
                    "violent_content": 0.04, "spam": 0.08, "counterfeit": 0.16, "misrepresented_item": 0.16,
                    "shill_bidding": 0.1, "disruptive_auction_behavior": 0.06}
NOISE_BUYER_MIX = {"harassment": 0.35, "spam": 0.25, "disruptive_auction_behavior": 0.2, "payment_fraud": 0.1,
                   "hate_speech": 0.1}
SPIKE_MIX = {"hate_speech": 0.45, "harassment": 0.25, "threats_of_harm": 0.15, "explicit_content": 0.1,
             "violent_content": 0.05}
BRIGADE_MIX = {"harassment": 0.3, "hate_speech": 0.2, "counterfeit": 0.2, "misrepresented_item": 0.15,
               "explicit_content": 0.1, "shill_bidding": 0.05}
BRIGADE_CHANNELS = {"profile": 0.5, "livestream": 0.35, "direct_message": 0.15}
BUYER_TO_BUYER_CHANNELS = {"direct_message": 0.6, "profile": 0.4}
AUTOMATED_LIVE_MIX = {"explicit_content": 0.3, "hate_speech": 0.25, "violent_content": 0.15, "spam": 0.3}
AUTOMATED_SYSTEM_MIX = {"payment_fraud": 0.5, "shill_bidding": 0.3, "counterfeit": 0.2}
RETALIATION_BY_SELLER = {"harassment": 0.4, "payment_fraud": 0.3, "spam": 0.15, "disruptive_auction_behavior": 0.15}
RETALIATION_BY_BUYER = {"misrepresented_item": 0.3, "counterfeit": 0.25, "harassment": 0.25, "non_delivery_scam": 0.2}
REMORSE_MIX = {"misrepresented_item": 0.35, "damaged_item": 0.2, "wrong_item": 0.2, "counterfeit": 0.15, "missing_item": 0.1}
USER_CHANNELS_ABOUT_SELLER = {"livestream": 0.65, "profile": 0.2, "direct_message": 0.15}
ORDER_CHANNELS = {"direct_message": 0.55, "profile": 0.45}

# Base chance a report is upheld, before the reporter's credibility moves it.
P_INCIDENT = 0.9
P_NOISE = 0.12
P_BRIGADE = 0.04
P_RETALIATION = 0.08
P_SPIKE_REAL, P_SPIKE_MISREAD = 0.93, 0.3
P_MODERATOR_HIT, P_MODERATOR_MISS = 0.92, 0.25
P_DETECTOR_HIT, P_DETECTOR_MISS = 0.8, 0.12
CREDIBILITY_WEIGHT, CREDIBILITY_CENTER = 2.5, 0.75
VERIFIED_SUBJECT_LOGIT = -0.4  # unfounded complaints about verified sellers are upheld even less

# How severe a kind's incidents run (added to a per-account shift), on the ordinal logit scale.
KIND_SEVERITY_SHIFT: dict[str, float] = {
    "normal": -0.6, "abusive_streamer": 0.3, "scam_seller": 0.3, "sloppy_shipper": 0.0, "fraud_ring": 0.2,
    "payment_fraudster": 0.2, "account_takeover": 0.4, "harasser": 0.1, "brigader": 0.0, "moderator": 0.0,
}
SPIKE_SEVERITY_SHIFT, NOISE_SEVERITY_SHIFT = 0.8, -0.5
# Given a valid report, the chance investigators confirm fraud.
FRAUD_GIVEN_VALID_ACTOR, FRAUD_GIVEN_VALID_SCAM_LOGISTICS, FRAUD_GIVEN_VALID_OTHER = 0.75, 0.3, 0.04
FRAUD_KINDS = ("scam_seller", "fraud_ring", "payment_fraudster", "account_takeover")

FIELDS = ("t", "reporter", "rtype", "channel", "subject", "show_host", "order", "category", "scenario",
          "incident", "p_valid", "sev_shift", "fraud_given_valid")
Batch = dict[str, np.ndarray]


# ----------------------------------------------------------------------------------------------
# Small helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def credible(base: np.ndarray | float, credibility: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """A user report's validity moves with how often that reporter has been right."""
    return _sigmoid(_logit(base) + CREDIBILITY_WEIGHT * (credibility - CREDIBILITY_CENTER) + shift)


def draw_from(rng: np.random.Generator, n: int, mix: dict[str, float], codes: dict[str, int]) -> np.ndarray:
    """Codes drawn from a named mix (the mix need not be normalised)."""
    names = list(mix)
    p = np.array([mix[k] for k in names])
    return np.array([codes[k] for k in names], dtype=np.int64)[rng.choice(len(names), n, p=p / p.sum())]


def _batch(n: int, scenario: str, **cols: np.ndarray | float | int) -> Batch:
    """One scenario's reports; scalars are broadcast and unset fields get their neutral value."""
    defaults = {"reporter": -1, "rtype": USER, "show_host": -1, "order": -1, "incident": -1, "sev_shift": 0.0,
                "fraud_given_valid": 0.0}
    out: Batch = {}
    for name in FIELDS:
        value = SCENARIOS.index(scenario) if name == "scenario" else cols.get(name, defaults.get(name))
        arr = np.asarray(value)
        out[name] = np.full(n, arr) if arr.ndim == 0 else arr
    return out


def concat(batches: list[Batch]) -> Batch:
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def subset(batch: Batch, keep: np.ndarray) -> Batch:
    return {k: v[keep] for k, v in batch.items()}


def _split_sizes(rng: np.random.Generator, total: int, size: tuple[int, int]) -> np.ndarray:
    """Event sizes drawn from `size`, scaled to add up to exactly `total` (one event if total is below the minimum)."""
    if total <= 0:
        return np.zeros(0, np.int64)
    if total < size[0]:
        return np.array([total])
    raw = rng.integers(size[0], size[1] + 1, max(1, min(round(total / np.mean(size)), total // size[0])))
    sizes = np.maximum(size[0], np.floor(raw * total / raw.sum()).astype(np.int64))
    sizes[np.argmax(sizes)] += total - sizes.sum()
    return sizes


# ----------------------------------------------------------------------------------------------
# The world the scenarios draw from


@dataclass(frozen=True)
class SellerOrders:
    """Orders sorted by (seller, created): the recent orders of a seller before a time, by searchsorted."""

    order: np.ndarray
    key: np.ndarray

    SPAN = 16384.0  # more days than any period

    @classmethod
    def of(cls, market: Market) -> "SellerOrders":
        key = market.seller * cls.SPAN + market.created
        order = np.argsort(key, kind="stable")
        return cls(order=order, key=key[order])

    def recent(self, rng: np.random.Generator, seller: np.ndarray, t: np.ndarray, margin: float = 0.02) -> np.ndarray:
        """One of the seller's last orders placed before t (-1 if it has none)."""
        lo = np.searchsorted(self.key, seller * self.SPAN, side="left")
        hi = np.searchsorted(self.key, seller * self.SPAN + t - margin, side="left")
        n = np.minimum(hi - lo, ORDER_LOOKBACK)
        pick = hi - 1 - (rng.random(seller.size) * n).astype(np.int64)
        return np.where(n > 0, self.order[np.clip(pick, 0, self.order.size - 1)], -1)


@dataclass(frozen=True)
class World:
    rng: np.random.Generator
    pop: Population
    market: Market
    clock: Clock
    seller_orders: SellerOrders
    pools: dict[str, TimedPool]
    until: np.ndarray  # when each account went quiet for good (left or banned); inf if never
    used: np.ndarray  # orders some report already points at

    @property
    def days(self) -> int:
        return self.clock.days

    def draw(self, pool: str, t: np.ndarray) -> np.ndarray:
        """Accounts from a pool that are open at each time."""
        return self.pools[pool].draw(self.rng, t, self.until)

    def open_at(self, account: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.until[account] > t


def make_world(rng: np.random.Generator, pop: Population, market: Market, clock: Clock,
               until: np.ndarray | None = None, used: np.ndarray | None = None) -> World:
    """The account pools every scenario draws from, each weighted for its purpose."""
    idx = np.arange(pop.size)
    ordinary = ~pop.is_kind("moderator", "brigader", "fraud_ring")
    buyer, seller = ordinary & ~pop.seller, ordinary & pop.seller
    normal = pop.is_kind("normal")

    def pool(mask: np.ndarray, weight: np.ndarray, since: np.ndarray | None = None) -> TimedPool:
        since = pop.created if since is None else since
        return TimedPool.of(idx[mask], since[mask] + 0.5, weight[mask])

    detectable = pop.is_kind("abusive_streamer", "harasser", "fraud_ring", "scam_seller", "payment_fraudster",
                             "account_takeover")
    pools = {
        "witness_buyer": pool(buyer, pop.activity),
        "witness_seller": pool(seller, pop.activity),
        "filer": pool(ordinary, pop.propensity * np.where(pop.seller, 1.0, 3.0)),
        "incident": pool(pop.incident_rate > 0, pop.incident_rate, pop.active_from),
        "streamer": pool(pop.is_kind("abusive_streamer"), pop.incident_rate),
        "detectable": pool(detectable, 1 + pop.incident_rate, pop.active_from),
        "normal_seller": pool(normal & pop.seller, pop.activity),
        "normal_buyer": pool(normal & ~pop.seller, pop.activity),
        "staff": pool(pop.is_kind("moderator"), np.ones(pop.size)),
    }
    until = pop.until if until is None else until
    used = np.zeros(market.size, bool) if used is None else used
    return World(rng, pop, market, clock, SellerOrders.of(market), pools, until, used)


def _when(w: World, n: int, *pools: str, lo: float = 0.0) -> np.ndarray:
    """Report times once every pool involved has someone active."""
    first = max([lo, *(w.pools[p].first for p in pools)])
    return w.clock.draw(w.rng, n, lo=first, hi=w.days - 1e-3)


def _severity_shift(w: World, subject: np.ndarray, extra: np.ndarray | float = 0.0) -> np.ndarray:
    kind_shift = np.array([KIND_SEVERITY_SHIFT[k] for k in KINDS])
    return kind_shift[w.pop.kind[subject]] + w.pop.severity_shift[subject] + extra


def _fraud_given_valid(w: World, subject: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Fraud is confirmed for fraud-family reports about fraud actors, rarely otherwise."""
    family = FAMILY_OF_CAT[category]
    actor = w.pop.is_kind(*FRAUD_KINDS)[subject]
    scam = w.pop.kind[subject] == KIND["scam_seller"]
    return np.select(
        [(family == FRAUD_FAMILY) & actor, (family == LOGISTICS_FAMILY) & scam, family == FRAUD_FAMILY],
        [FRAUD_GIVEN_VALID_ACTOR, FRAUD_GIVEN_VALID_SCAM_LOGISTICS, FRAUD_GIVEN_VALID_OTHER], 0.0)


def _kind_category(w: World, subject: np.ndarray) -> np.ndarray:
    """The category a witness picks, given what the subject really does."""
    out = np.full(subject.size, CAT["harassment"], np.int64)
    kind = w.pop.kind[subject]
    for name, mix in KIND_CATEGORY_MIX.items():
        mask = kind == KIND[name]
        out[mask] = draw_from(w.rng, int(mask.sum()), mix, CAT)
    return out


def _user_channel(w: World, subject: np.ndarray, reporter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel and show host of a user report: sellers are reported from their shows, buyers from a seller's."""
    rng = w.rng
    about_seller = w.pop.seller[subject]
    by_seller = w.pop.seller[reporter]
    channel = draw_from(rng, subject.size, USER_CHANNELS_ABOUT_SELLER, CHANNEL)
    channel = np.where(~about_seller & by_seller, CHANNEL["livestream"], channel)
    between_buyers = draw_from(rng, subject.size, BUYER_TO_BUYER_CHANNELS, CHANNEL)
    channel = np.where(~about_seller & ~by_seller, between_buyers, channel)
    live = channel == CHANNEL["livestream"]
    host = np.select([live & about_seller, live & by_seller], [subject, reporter], -1)
    return channel, host


def _attach_order(w: World, subject: np.ndarray, reporter: np.ndarray, category: np.ndarray,
                  t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complaints about goods come from someone who bought from the seller: link their order."""
    needs = w.pop.seller[subject] & ~w.pop.seller[reporter] & GOODS_CATEGORY[category]
    order = np.full(subject.size, -1, np.int64)
    order[needs] = w.seller_orders.recent(w.rng, subject[needs], t[needs])
    order = np.where((order >= 0) & w.open_at(w.market.buyer[np.maximum(order, 0)], t), order, -1)
    linked = order >= 0
    reporter = np.where(linked, w.market.buyer[np.maximum(order, 0)], reporter)
    return order, reporter


# ----------------------------------------------------------------------------------------------
# Account-driven scenarios


def incident_behavior(w: World, n: int) -> Batch:
    """Witnesses report what a bad actor actually does; the worst actors are reported again and again."""
    rng, pop = w.rng, w.pop
    t = _when(w, n, "incident", "witness_buyer", "witness_seller")
    subject = w.draw("incident", t)
    by_seller = ~pop.seller[subject] & (rng.random(n) < 0.5)
    reporter = np.where(by_seller, w.draw("witness_seller", t), w.draw("witness_buyer", t))
    category = _kind_category(w, subject)
    order, reporter = _attach_order(w, subject, reporter, category, t)
    channel, host = _user_channel(w, subject, reporter)
    channel = np.where(order >= 0, draw_from(rng, n, ORDER_CHANNELS, CHANNEL), channel)
    host = np.where(order >= 0, -1, host)
    return _batch(n, "incident_behavior", t=t, reporter=reporter, channel=channel, subject=subject, show_host=host,
                  order=order, category=category, p_valid=credible(P_INCIDENT, pop.credibility[reporter]),
                  sev_shift=_severity_shift(w, subject), fraud_given_valid=_fraud_given_valid(w, subject, category))


def noise_profile(w: World, n: int) -> Batch:
    """Unfounded reports about ordinary accounts, filed mostly by habitual reporters."""
    rng, pop = w.rng, w.pop
    t = _when(w, n, "normal_seller", "normal_buyer", "filer")
    about_seller = rng.random(n) < 0.65
    subject = np.where(about_seller, w.draw("normal_seller", t), w.draw("normal_buyer", t))
    reporter = w.draw("filer", t)
    for _ in range(20):  # nobody reports themselves
        same = reporter == subject
        if not same.any():
            break
        reporter[same] = w.draw("filer", t[same])
    category = np.where(about_seller, draw_from(rng, n, NOISE_SELLER_MIX, CAT), draw_from(rng, n, NOISE_BUYER_MIX, CAT))
    order, reporter = _attach_order(w, subject, reporter, category, t)
    channel, host = _user_channel(w, subject, reporter)
    channel = np.where(order >= 0, draw_from(rng, n, ORDER_CHANNELS, CHANNEL), channel)
    host = np.where(order >= 0, -1, host)
    shift = np.where(pop.verified[subject] & pop.seller[subject], VERIFIED_SUBJECT_LOGIT, 0.0)
    return _batch(n, "noise_profile", t=t, reporter=reporter, channel=channel, subject=subject, show_host=host, order=order,
                  category=category, p_valid=credible(P_NOISE, pop.credibility[reporter], shift),
                  sev_shift=_severity_shift(w, subject, NOISE_SEVERITY_SHIFT),
                  fraud_given_valid=_fraud_given_valid(w, subject, category))


def spike(w: World, n: int, first_incident: int) -> Batch:
    """Dozens of viewers report the same show within minutes: usually a real on-stream incident."""
    rng, pop = w.rng, w.pop
    sizes = _split_sizes(rng, n, SPIKE_SIZE)
    k = sizes.size
    start = _when(w, k, "streamer", "normal_seller", "witness_buyer")
    overrun = np.maximum(start % 1 + (SPIKE_MINUTES_MAX + 1) / 1440 - 1, 0)
    start = np.maximum(start - overrun, 0)  # a spike stays within one show: it ends before midnight
    real = rng.random(k) < SPIKE_REAL_SHARE
    host = np.where(real, w.draw("streamer", start), w.draw("normal_seller", start))
    dominant = draw_from(rng, k, SPIKE_MIX, CAT)
    event = np.repeat(np.arange(k), sizes)
    minutes = np.minimum(rng.exponential(SPIKE_MINUTES_MEAN, n), SPIKE_MINUTES_MAX)
    t = np.minimum(start[event] + minutes / 1440, w.days - 1e-4)
    subject = host[event]
    reporter = w.draw("witness_buyer", t)
    category = np.where(rng.random(n) < 0.8, dominant[event], draw_from(rng, n, SPIKE_MIX, CAT))
    base = np.where(real[event], P_SPIKE_REAL, P_SPIKE_MISREAD)
    return _batch(n, "spike", t=t, reporter=reporter, channel=CHANNEL["livestream"], subject=subject, show_host=subject,
                  category=category, incident=first_incident + event, p_valid=credible(base, pop.credibility[reporter]),
                  sev_shift=_severity_shift(w, subject, np.where(real[event], SPIKE_SEVERITY_SHIFT, 0.0)),
                  fraud_given_valid=_fraud_given_valid(w, subject, category))


def brigading(w: World, n: int, first_incident: int) -> Batch:
    """A clique of fresh, linked accounts piles false reports onto one ordinary seller within an hour."""
    rng, pop = w.rng, w.pop
    members = np.flatnonzero(pop.kind == KIND["brigader"])
    members = members[np.argsort(pop.group[members], kind="stable")]
    groups, first, size = np.unique(pop.group[members], return_index=True, return_counts=True)
    ready = np.maximum.reduceat(pop.created[members], first) + 0.5
    sizes = _split_sizes(rng, n, BRIGADE_EVENT_SIZE)
    k = sizes.size
    g = rng.integers(0, groups.size, k)
    lo = np.maximum(np.maximum(ready[g], w.pools["normal_seller"].first), 0.0)
    start = lo + rng.random(k) * np.maximum(w.days - 0.05 - lo, 0)
    target = w.draw("normal_seller", start)
    event = np.repeat(np.arange(k), sizes)
    t = np.minimum(start[event] + rng.random(n) * BRIGADE_HOURS / 24, w.days - 1e-4)
    reporter = members[first[g[event]] + (rng.random(n) * size[g[event]]).astype(np.int64)]
    subject = target[event]
    dominant = draw_from(rng, k, BRIGADE_MIX, CAT)
    category = np.where(rng.random(n) < 0.7, dominant[event], draw_from(rng, n, BRIGADE_MIX, CAT))
    dominant_channel = draw_from(rng, k, BRIGADE_CHANNELS, CHANNEL)
    channel = np.where(rng.random(n) < 0.8, dominant_channel[event], draw_from(rng, n, BRIGADE_CHANNELS, CHANNEL))
    host = np.where(channel == CHANNEL["livestream"], subject, -1)
    return _batch(n, "brigading", t=t, reporter=reporter, channel=channel, subject=subject, show_host=host,
                  category=category, incident=first_incident + event, p_valid=credible(P_BRIGADE, pop.credibility[reporter]),
                  sev_shift=_severity_shift(w, subject, NOISE_SEVERITY_SHIFT),
                  fraud_given_valid=_fraud_given_valid(w, subject, category))


def moderator(w: World, n: int) -> Batch:
    """Moderators watching shows: mostly right about known trouble-makers, less so otherwise."""
    rng, pop = w.rng, w.pop
    t = _when(w, n, "incident", "normal_seller", "normal_buyer", "staff")
    hit = rng.random(n) < 0.7
    about_seller = rng.random(n) < 0.7
    normal = np.where(about_seller, w.draw("normal_seller", t), w.draw("normal_buyer", t))
    subject = np.where(hit, w.draw("incident", t), normal)
    noise_category = np.where(pop.seller[subject], draw_from(rng, n, NOISE_SELLER_MIX, CAT),
                              draw_from(rng, n, NOISE_BUYER_MIX, CAT))
    category = np.where(hit, _kind_category(w, subject), noise_category)
    channel = np.where(rng.random(n) < 0.7, CHANNEL["livestream"], CHANNEL["profile"])
    host = np.where((channel == CHANNEL["livestream"]) & pop.seller[subject], subject, -1)
    return _batch(n, "moderator", t=t, reporter=w.draw("staff", t), rtype=RTYPE["moderator"], channel=channel,
                  subject=subject, show_host=host, category=category,
                  p_valid=np.where(hit, P_MODERATOR_HIT, P_MODERATOR_MISS),
                  sev_shift=_severity_shift(w, subject, np.where(hit, 0.0, NOISE_SEVERITY_SHIFT)),
                  fraud_given_valid=_fraud_given_valid(w, subject, category))


def automated_detection(w: World, n: int) -> Batch:
    """A classifier on chat, streams and payments: half its flags land on real bad actors."""
    rng, pop = w.rng, w.pop
    t = _when(w, n, "detectable", "normal_seller", "normal_buyer", lo=AUTOMATED_LAUNCH_SHARE * w.days)
    hit = rng.random(n) < 0.5
    normal = np.where(rng.random(n) < 0.6, w.draw("normal_seller", t), w.draw("normal_buyer", t))
    subject = np.where(hit, w.draw("detectable", t), normal)
    kind = pop.kind[subject]
    on_stream = np.where(hit, np.isin(kind, [KIND["abusive_streamer"], KIND["harasser"]]), rng.random(n) < 0.5)
    live_category = np.where(hit & (kind == KIND["harasser"]), draw_from(rng, n, {"spam": 0.6, "harassment": 0.4}, CAT),
                             draw_from(rng, n, AUTOMATED_LIVE_MIX, CAT))
    system_category = np.select(
        [hit & (kind == KIND["fraud_ring"]), hit & (kind == KIND["scam_seller"]), hit],
        [CAT["shill_bidding"], CAT["counterfeit"], CAT["payment_fraud"]], draw_from(rng, n, AUTOMATED_SYSTEM_MIX, CAT))
    category = np.where(on_stream, live_category, system_category)
    channel = np.where(on_stream, CHANNEL["livestream"], CHANNEL["system"])
    host = np.where(on_stream & pop.seller[subject], subject, -1)
    return _batch(n, "automated_detection", t=t, rtype=RTYPE["automated_detection"], channel=channel, subject=subject,
                  show_host=host, category=category, p_valid=np.where(hit, P_DETECTOR_HIT, P_DETECTOR_MISS),
                  sev_shift=_severity_shift(w, subject), fraud_given_valid=_fraud_given_valid(w, subject, category))


# ----------------------------------------------------------------------------------------------
# Order-driven scenarios


def _sample_orders(w: World, n: int, eligible: np.ndarray, when: np.ndarray,
                   weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n weighted orders among those eligible whose report falls inside the period.

    Each order is used once while the pool lasts (exponential keys: weighted
    sampling without replacement in one pass); only a pool too small repeats orders.
    """
    m = w.market
    ok = eligible & ~w.used & (when < w.days - 1e-4) & (when > m.created)
    ok &= w.open_at(m.buyer, when) & w.open_at(m.seller, when)
    pool = np.flatnonzero(ok)
    if pool.size == 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    wt = np.ones(pool.size) if weight is None else weight[pool]
    keys = w.rng.exponential(size=pool.size) / wt
    first = pool[np.argsort(keys, kind="stable")[: min(n, pool.size)]]
    extra = w.rng.choice(pool, n - first.size, replace=True, p=wt / wt.sum()) if n > pool.size else pool[:0]
    chosen = np.concatenate([first, extra])
    return chosen, when[chosen]


def _order_batch(w: World, scenario: str, orders: np.ndarray, t: np.ndarray, against_seller: np.ndarray | bool,
                 category: np.ndarray, base: np.ndarray | float, channel: np.ndarray | None = None, **cols) -> Batch:
    """A report about an order: the buyer complains about the seller, or the seller about the buyer."""
    m = w.market
    against_seller = np.broadcast_to(against_seller, orders.shape)
    subject = np.where(against_seller, m.seller[orders], m.buyer[orders])
    reporter = np.where(against_seller, m.buyer[orders], m.seller[orders])
    channel = draw_from(w.rng, orders.size, ORDER_CHANNELS, CHANNEL) if channel is None else channel
    cols.setdefault("p_valid", credible(base, w.pop.credibility[reporter]))
    cols.setdefault("fraud_given_valid", _fraud_given_valid(w, subject, category))
    return _batch(orders.size, scenario, t=t, reporter=reporter, channel=channel, subject=subject, order=orders,
                  category=category, sev_shift=_severity_shift(w, subject), **cols)


def _problem_category(w: World, orders: np.ndarray, scam: bool) -> np.ndarray:
    """What a buyer calls a failed order: a delay, a missing parcel, or the item's actual problem."""
    m, n = w.market, orders.size
    status, problem = m.status[orders], m.problem[orders]
    never = draw_from(w.rng, n, {"non_delivery_scam": 0.6, "shipping_delay": 0.2, "missing_item": 0.2} if scam
                      else {"shipping_delay": 0.6, "missing_item": 0.4}, CAT)
    problem_cat = np.array([CAT.get(p, 0) for p in PROBLEMS])[problem]
    return np.select([status == NEVER, problem > 0], [never, problem_cat], CAT["shipping_delay"])


def _problem_time(w: World) -> np.ndarray:
    m, rng = w.market, w.rng
    n = m.size
    return np.select(
        [m.problem > 0, m.status == NEVER, m.status == LATE],
        [m.delivered + rng.uniform(0.1, 3, n), m.ship_by + rng.uniform(1, 10, n), m.ship_by + rng.uniform(0.5, 6, n)],
        np.inf)


def incident_orders(w: World, n_logistics: int, n_scam: int) -> list[Batch]:
    """Buyers report orders that really went wrong; scam sellers' orders are reported as scams."""
    m, pop = w.market, w.pop
    when = _problem_time(w)
    failed = (m.kind != 1) & ((m.problem > 0) | (m.status == NEVER) | (m.status == LATE))
    scam = pop.kind[m.seller] == KIND["scam_seller"]
    out = []
    for n, mask, name, is_scam in ((n_logistics, failed & ~scam, "incident_logistics", False),
                                   (n_scam, failed & scam, "incident_scam", True)):
        orders, t = _sample_orders(w, n, mask, when)
        base = np.where(pop.kind[m.seller[orders]] == KIND["sloppy_shipper"], 0.88, 0.8)
        out.append(_order_batch(w, name, orders, t, True, _problem_category(w, orders, is_scam), base))
    return out


def incident_payment_fraud(w: World, n: int) -> Batch:
    """Sellers report buyers whose payments look stolen; confirmed when the order really was fraud."""
    m, pop, rng = w.market, w.pop, w.rng
    buyer_kind = pop.kind[m.buyer]
    honest_seller = pop.kind[m.seller] != KIND["scam_seller"]
    suspect = (buyer_kind == KIND["payment_fraudster"]) | (m.kind == 2) | (m.fraud & honest_seller)
    when = m.created + rng.uniform(0.3, 8, m.size)
    orders, t = _sample_orders(w, n, suspect & (m.kind != 1), when, np.where(m.fraud, 4.0, 1.0))
    fraud = m.fraud[orders]
    category = np.full(orders.size, CAT["payment_fraud"])
    return _order_batch(w, "incident_payment_fraud", orders, t, False, category, np.where(fraud, 0.92, 0.45),
                        fraud_given_valid=np.where(fraud, 0.9, 0.3))


def noise_order(w: World, n: int) -> Batch:
    """Complaints about orders that went fine: impatience before the deadline, or buyer's remorse."""
    m, pop, rng = w.market, w.pop, w.rng
    fine = (m.kind == 0) & (m.status == ON_TIME) & (m.problem == 0)
    n_seller = int(round(0.15 * n))
    n_buyer = n - n_seller
    impatient = rng.random(m.size) < 0.35
    before_deadline = m.created + rng.uniform(0.3, 1.0, m.size) * (m.ship_by - m.created - 0.3)
    when = np.where(impatient, before_deadline, m.delivered + rng.uniform(0.2, 5, m.size))
    orders, t = _sample_orders(w, n_buyer, fine, when, pop.propensity[m.buyer])
    category = np.where(impatient[orders], CAT["shipping_delay"], draw_from(rng, orders.size, REMORSE_MIX, CAT))
    by_buyer = _order_batch(w, "noise_order", orders, t, True, category, P_NOISE)
    clean_buyer = fine & pop.is_kind("normal")[m.buyer] & ~m.fraud
    orders, t = _sample_orders(w, n_seller, clean_buyer, m.created + rng.uniform(1, 10, m.size), pop.propensity[m.seller])
    by_seller = _order_batch(w, "noise_order", orders, t, False, np.full(orders.size, CAT["payment_fraud"]), P_NOISE)
    return concat([by_buyer, by_seller])


def retaliatory(w: World, n: int) -> Batch:
    """After a refund or a cancellation the losing side files a report back at the other."""
    m, pop, rng = w.market, w.pop, w.rng
    n_seller = int(round(0.6 * n))
    refunded = ~np.isnan(m.refunded) & (m.status != CANCELLED) & (m.kind != 1)
    orders, t = _sample_orders(w, n_seller, refunded, m.refunded + rng.uniform(0.05, 2, m.size))
    category = draw_from(rng, orders.size, RETALIATION_BY_SELLER, CAT)
    guilty = (pop.kind[m.buyer[orders]] == KIND["payment_fraudster"]) & (category == CAT["payment_fraud"])
    by_seller = _order_batch(w, "retaliatory", orders, t, False, category, np.where(guilty, 0.6, P_RETALIATION))
    cancelled = (m.status == CANCELLED) & (m.kind != 1)
    orders, t = _sample_orders(w, n - n_seller, cancelled, m.cancelled + rng.uniform(0.05, 2, m.size))
    category = draw_from(rng, orders.size, RETALIATION_BY_BUYER, CAT)
    channel = draw_from(rng, orders.size, {"profile": 0.6, "direct_message": 0.4}, CHANNEL)
    by_buyer = _order_batch(w, "retaliatory", orders, t, True, category, P_RETALIATION, channel=channel)
    return concat([by_seller, by_buyer])


def rules_engine(w: World, n: int) -> Batch:
    """The fulfilment monitor flags orders not shipped by their deadline; chronic late shippers are real cases."""
    m, pop, rng = w.market, w.pop, w.rng
    check = m.ship_by + rng.uniform(0.05, 0.5, m.size)
    missed = ((m.status == NEVER) | ((m.status == LATE) & (m.shipped > check))) & (m.kind != 1)
    rate = pop.late_rate[m.seller] + pop.never_rate[m.seller]
    orders, t = _sample_orders(w, n, missed, check, 1 + 10 * rate)
    missing = (m.status[orders] == NEVER) & (rng.random(orders.size) < 0.3)
    category = np.where(missing, CAT["missing_item"], CAT["shipping_delay"])
    p_valid = 0.45 + 0.5 * np.minimum(1.0, rate[orders] / 0.25)
    batch = _order_batch(w, "rules_engine", orders, t, True, category, 0.5, channel=np.full(orders.size, CHANNEL["system"]),
                         rtype=RTYPE["rules_engine"], p_valid=p_valid)
    batch["reporter"] = np.full(orders.size, -1)
    return batch


# ----------------------------------------------------------------------------------------------
# All together


def scenario_counts(n_reports: int) -> dict[str, int]:
    """Exactly n_reports split by SCENARIO_SHARE (rounding goes to the noise scenario)."""
    counts = {k: int(np.floor(v * n_reports)) for k, v in SCENARIO_SHARE.items()}
    counts["noise_profile"] += n_reports - sum(counts.values())
    return counts


def make_reports(w: World, counts: dict[str, int], first_incident: int = 0) -> Batch:
    """Reports per scenario, sorted by time; order-driven shortfalls are made up with noise.

    Spikes and brigades are numbered from first_incident so later batches never reuse an id.
    """
    c = {k: counts.get(k, 0) for k in SCENARIOS}
    batches = [
        incident_behavior(w, c["incident_behavior"]),
        *incident_orders(w, c["incident_logistics"], c["incident_scam"]),
        incident_payment_fraud(w, c["incident_payment_fraud"]),
        noise_order(w, c["noise_order"]),
        retaliatory(w, c["retaliatory"]),
        rules_engine(w, c["rules_engine"]),
        moderator(w, c["moderator"]),
        automated_detection(w, c["automated_detection"]),
    ]
    spikes = spike(w, c["spike"], first_incident)
    brigades = brigading(w, c["brigading"], int(spikes["incident"].max(initial=first_incident - 1)) + 1)
    batches += [spikes, brigades]
    short = sum(c.values()) - c["noise_profile"] - sum(b["t"].size for b in batches)
    batches.append(noise_profile(w, c["noise_profile"] + short))
    reports = concat(batches)
    reports = subset(reports, np.argsort(reports["t"], kind="stable"))
    same = reports["reporter"] == reports["subject"]  # a witness drawn from a pool can be the subject itself
    if same.any():
        subject, t = reports["subject"][same], reports["t"][same]
        reports["reporter"][same] = np.where(w.pop.seller[subject], w.draw("witness_buyer", t), w.draw("witness_seller", t))
    user = reports["rtype"] == USER
    role = np.where(w.pop.seller[reports["reporter"]], RTYPE["seller"], RTYPE["buyer"])
    reports["rtype"] = np.where(user, role, reports["rtype"])
    return reports


def refill(target: dict[str, int], kept: np.ndarray, missing: int) -> dict[str, int]:
    """How many reports each scenario still needs so the mix stays on target and the total is exact."""
    have = np.bincount(kept, minlength=len(SCENARIOS))
    need = {k: max(target[k] - int(have[i]), 0) for i, k in enumerate(SCENARIOS) if k != "noise_profile"}
    excess = sum(need.values()) - missing
    for k in sorted(need, key=need.get, reverse=True):  # only when noise already ran over its share
        cut = min(excess, need[k])
        need[k] -= cut
        excess -= cut
    # Too few for a spike or a brigade of their own: keep the volume with the nearest ordinary scenario.
    events = (("spike", SPIKE_SIZE, "incident_behavior"), ("brigading", BRIGADE_EVENT_SIZE, "noise_profile"))
    for event, size, instead in events:
        if 0 < need[event] < size[0]:
            need[instead] = need.get(instead, 0) + need[event]
            need[event] = 0
    need["noise_profile"] = missing - sum(v for k, v in need.items() if k != "noise_profile")
    return need
