"""The latent marketplace behind the simulator: accounts with hidden kinds, and their orders.

Everything here is plain arrays indexed by account or order position, with time
in fractional days since the start of the period. The contract tables are only
assembled at the very end (`simulator.simulate`), which keeps every draw
vectorised: a million reports must simulate in well under a minute.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Latent account kinds. They never reach a table; they surface only through behaviour and truth.
KINDS: tuple[str, ...] = (
    "normal",
    "abusive_streamer",
    "scam_seller",
    "sloppy_shipper",
    "fraud_ring",
    "payment_fraudster",
    "account_takeover",
    "harasser",
    "brigader",
    "moderator",
)
KIND: dict[str, int] = {name: i for i, name in enumerate(KINDS)}

SELLER_SHARE = 0.25
SELLER_KIND_RATES: dict[str, float] = {"abusive_streamer": 0.03, "scam_seller": 0.02, "sloppy_shipper": 0.06}
BUYER_KIND_RATES: dict[str, float] = {"payment_fraudster": 0.02, "account_takeover": 0.01, "harasser": 0.03}
# Share of ordinary accounts that file many reports which are almost never upheld.
SERIAL_FALSE_REPORTER_RATE = 0.03
PRE_EXISTING_SHARE = 0.6  # accounts already open when the period starts
ACCOUNT_AGE_SCALE_DAYS = 420.0
OLDEST_ACCOUNT_DAYS = 2500.0
TAKEOVER_MIN_AGE_DAYS = 180.0

# Bad actors lose accounts (banned or abandoned) and come back with new ones: mean days an account lasts.
CAREER_DAYS: dict[str, float] = {"abusive_streamer": 60.0, "scam_seller": 30.0, "harasser": 90.0, "payment_fraudster": 40.0}
RETURN_GAP_DAYS = 6.0
RETURN_RATE = 0.95
SUCCESSOR_SHARE = 0.16  # accounts added by returning bad actors, as a share of the open population

RING_MEMBER_SHARE = 0.006  # of all accounts
RING_LIFETIME_DAYS = 120.0
RING_SIZE = (4, 10)
RING_ORDERS_PER_MEMBER = 12.0
BRIGADE_SIZE = (6, 18)
STAFF_PER_ACCOUNT = 1 / 2500
TAKEOVER_SPREE_ORDERS = 6.0
TAKEOVER_SPREE_DAYS = 4.0

# Calendar shape of activity: growth per year, weekday multipliers (Mon..Sun), holiday months.
GROWTH_PER_YEAR = 0.45
WEEKDAY_WEIGHTS = np.array([0.9, 0.85, 0.9, 0.95, 1.05, 1.2, 1.25])
HOLIDAY_WEIGHTS = {11: 1.25, 12: 1.35}
EVENING_PEAK_HOUR_UTC = 1.0
DIURNAL_AMPLITUDE = 0.6

SHOW_SHARE = 0.85  # orders placed during a livestream
AMOUNT_LOG_MEAN, AMOUNT_LOG_SD = 3.3, 0.9
SHIP_WINDOW_DAYS = (2.0, 3.0)
LATE_SHIP_MEAN_DAYS = 3.0
TRANSIT_SHAPE, TRANSIT_SCALE_DAYS = 2.5, 1.2
LOST_IN_TRANSIT = 0.01
CHARGEBACK_SHAPE, CHARGEBACK_SCALE_DAYS = 2.0, 12.5  # label delay: mean 25 days

# Order fraud: a small base rate that drifts upward, plus what each bad actor brings.
BASE_ORDER_FRAUD = 0.002
PAYMENT_FRAUDSTER_ORDER_FRAUD = 0.45
TAKEOVER_SPREE_FRAUD = 0.7
RING_ORDER_FRAUD = 0.6
SCAM_SELLER_ORDER_FRAUD = 0.3
HARASSER_ORDER_FRAUD = 0.01

CANCEL_RATE = {"normal": 0.03, "sloppy_shipper": 0.07, "scam_seller": 0.12, "fraud_ring": 0.02}
# Delivered orders with something wrong with the item, by seller kind.
ITEM_PROBLEM_RATE = {"normal": 0.025, "sloppy_shipper": 0.08, "scam_seller": 0.4, "fraud_ring": 0.01}
PROBLEMS: tuple[str, ...] = ("none", "missing_item", "wrong_item", "damaged_item", "counterfeit", "misrepresented_item")
HONEST_PROBLEM_MIX = np.array([0.0, 0.35, 0.35, 0.30, 0.0, 0.0])
SCAM_PROBLEM_MIX = np.array([0.0, 0.15, 0.10, 0.0, 0.40, 0.35])
# Shipment states of an order.
ON_TIME, LATE, NEVER, CANCELLED = 0, 1, 2, 3
REFUND_IF_NEVER, REFUND_IF_LATE, REFUND_IF_PROBLEM, REFUND_OTHERWISE = 0.8, 0.12, 0.65, 0.01


MAX_REDRAWS = 30  # redraws when a pool draw lands on a closed (banned) account

# ----------------------------------------------------------------------------------------------
# Time


@dataclass(frozen=True)
class Clock:
    """When things happen: one hourly intensity over the period shared by orders and reports."""

    days: int
    cdf: np.ndarray  # cumulative mass at each hour boundary, from 0 to 1

    @classmethod
    def build(cls, days: int, start: np.datetime64) -> "Clock":
        hours = np.arange(days * 24)
        stamp = start.astype("datetime64[h]") + hours.astype("timedelta64[h]")
        weekday = (stamp.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        month = stamp.astype("datetime64[M]").astype(np.int64) % 12 + 1
        hour_of_day = stamp.astype(np.int64) % 24
        weight = np.exp(GROWTH_PER_YEAR * hours / (24 * 365)) * WEEKDAY_WEIGHTS[weekday]
        for m, factor in HOLIDAY_WEIGHTS.items():
            weight = np.where(month == m, weight * factor, weight)
        weight = weight * (1 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (hour_of_day - EVENING_PEAK_HOUR_UTC) / 24))
        cdf = np.concatenate([[0.0], np.cumsum(weight)])
        return cls(days=days, cdf=cdf / cdf[-1])

    def draw(self, rng: np.random.Generator, n: int, lo: np.ndarray | float = 0.0,
             hi: np.ndarray | float | None = None) -> np.ndarray:
        """Times in [lo, hi) following the seasonal intensity, so bounds never distort the calendar shape."""
        grid = np.arange(self.cdf.size, dtype=np.float64)
        hi = self.days if hi is None else hi
        f_lo = np.interp(np.asarray(lo, dtype=np.float64) * 24, grid, self.cdf)
        f_hi = np.interp(np.asarray(hi, dtype=np.float64) * 24, grid, self.cdf)
        u = f_lo + rng.random(n) * (f_hi - f_lo)
        return np.interp(u, self.cdf, grid) / 24


@dataclass(frozen=True)
class TimedPool:
    """Weighted draws among accounts already active at a given time (created, or taken over)."""

    members: np.ndarray  # account positions, sorted by `since`
    since: np.ndarray
    cum: np.ndarray  # cumulative weights in the same order

    @classmethod
    def of(cls, members: np.ndarray, since: np.ndarray, weight: np.ndarray) -> "TimedPool":
        keep = weight > 0
        members, since, weight = members[keep], since[keep], weight[keep]
        order = np.argsort(since, kind="stable")
        return cls(members=members[order], since=since[order], cum=np.cumsum(weight[order]))

    @property
    def first(self) -> float:
        return float(self.since[0])

    def draw(self, rng: np.random.Generator, t: np.ndarray, until: np.ndarray | None = None) -> np.ndarray:
        """One member per time among accounts active at t: opened before it and not yet closed (until)."""
        j = self._positions(rng, t)
        if until is not None:
            for _ in range(MAX_REDRAWS):  # a closed account is redrawn; a few rounds settle almost every row
                closed = until[self.members[j]] <= t
                if not closed.any():
                    break
                j[closed] = self._positions(rng, t[closed])
        return self.members[j]

    def _positions(self, rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
        k = np.maximum(np.searchsorted(self.since, t, side="right"), 1)  # the oldest member if nobody is active yet
        j = np.searchsorted(self.cum, rng.random(t.size) * self.cum[k - 1], side="right")
        return np.minimum(j, k - 1)


# ----------------------------------------------------------------------------------------------
# Accounts


@dataclass(frozen=True)
class Population:
    """Every account, sorted by creation time, with the latent traits that drive behaviour."""

    created: np.ndarray
    seller: np.ndarray
    kind: np.ndarray
    verified: np.ndarray
    credibility: np.ndarray  # how often the account's own reports are right
    propensity: np.ndarray  # how readily it files unfounded reports
    activity: np.ndarray  # weight in ordinary order traffic
    incident_rate: np.ndarray  # how often its misconduct gets reported
    severity_shift: np.ndarray  # how bad its incidents tend to be
    late_rate: np.ndarray  # seller: chance an order ships late
    never_rate: np.ndarray  # seller: chance an order never ships
    takeover: np.ndarray  # account_takeover: when the attacker got in (nan otherwise)
    group: np.ndarray  # fraud ring or brigade id, -1 otherwise
    until: np.ndarray  # when the account goes quiet for good (inf if it never does)

    @property
    def size(self) -> int:
        return self.created.size

    @property
    def active_from(self) -> np.ndarray:
        """When an account starts behaving as its kind: a taken-over account only after the takeover."""
        return np.where(np.isnan(self.takeover), self.created, self.takeover)

    def is_kind(self, *names: str) -> np.ndarray:
        return np.isin(self.kind, [KIND[n] for n in names])


def _pick(rng: np.random.Generator, n: int, rates: dict[str, float]) -> np.ndarray:
    """Kind codes drawn with the given rates, normal for the rest."""
    names = ["normal", *rates]
    probs = np.array([1 - sum(rates.values()), *rates.values()])
    return np.array([KIND[x] for x in names], dtype=np.int8)[rng.choice(len(names), size=n, p=probs)]


def _ordinary_accounts(rng: np.random.Generator, n: int, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Buyers and sellers of the open population: (created, seller, kind)."""
    seller = rng.random(n) < SELLER_SHARE
    old = rng.random(n) < PRE_EXISTING_SHARE
    old[:4] = True  # someone must already be trading on day one
    seller[:2], seller[2:4] = True, False
    created = np.where(
        old,
        -np.minimum(rng.gamma(1.6, ACCOUNT_AGE_SCALE_DAYS, n), OLDEST_ACCOUNT_DAYS) - 0.01,
        days * rng.random(n) ** (1 / 1.6),  # arrivals grow over the period
    )
    kind = np.where(seller, _pick(rng, n, SELLER_KIND_RATES), _pick(rng, n, BUYER_KIND_RATES))
    kind[:4] = KIND["normal"]
    for name, role in [(k, True) for k in SELLER_KIND_RATES] + [(k, False) for k in BUYER_KIND_RATES]:
        if not (kind == KIND[name]).any():  # small worlds still get one of every kind
            spare = np.flatnonzero((seller == role) & (kind == KIND["normal"]))
            kind[rng.choice(spare[spare >= 4])] = KIND[name]
    # Scam sellers and payment fraudsters are mostly young accounts; takeovers hit old ones.
    young = rng.random(n) < 0.7
    scam = (kind == KIND["scam_seller"]) & young
    created[scam] = rng.uniform(-30, days - 20, scam.sum())
    fraudster = (kind == KIND["payment_fraudster"]) & young
    created[fraudster] = rng.uniform(-60, days - 10, fraudster.sum())
    takeover = kind == KIND["account_takeover"]
    age = np.minimum(rng.gamma(1.6, ACCOUNT_AGE_SCALE_DAYS, takeover.sum()), OLDEST_ACCOUNT_DAYS)
    created[takeover] = -TAKEOVER_MIN_AGE_DAYS - age
    return created, seller, kind


def _groups(rng: np.random.Generator, n_groups: int, size: tuple[int, int], born: np.ndarray,
            spread_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Members of tight groups opened within a few days of each other: (group id, created)."""
    sizes = rng.integers(size[0], size[1] + 1, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    return group, born[group] + rng.uniform(0, spread_days, group.size)


def _careers(rng: np.random.Generator, created: np.ndarray, kind: np.ndarray,
             days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """How long bad actors keep an account, and the accounts they come back with.

    An account of a career kind goes quiet after a random career (banned or
    abandoned); the same person returns a few days later with a fresh account.
    Returns each account's end and, per successor account, (person, created, end).
    """
    mean = np.select([kind == KIND[k] for k in CAREER_DAYS], list(CAREER_DAYS.values()), np.nan)
    has_career = ~np.isnan(mean)
    until = np.where(has_career, np.maximum(created, 0) + rng.exponential(1.0, created.size) * np.nan_to_num(mean), np.inf)
    person, born, ends = [], [], []
    current = np.flatnonzero(has_career)
    end = until[current]
    while current.size:  # one round per generation of accounts; a few dozen at most
        start = end + rng.exponential(RETURN_GAP_DAYS, current.size)
        back = (start < days - 1) & (rng.random(current.size) < RETURN_RATE)
        current, start = current[back], start[back]
        end = start + rng.exponential(1.0, current.size) * mean[current]
        person.append(current)
        born.append(start)
        ends.append(end)
    join = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    return until, join(person, np.int64), join(born, np.float64), join(ends, np.float64)


def make_population(rng: np.random.Generator, n_accounts: int, n_brigades: int, days: int) -> Population:
    """All accounts: ordinary ones, bad actors' successive accounts, fraud rings (ramping up late), brigades, moderators."""
    n_brigades = max(1, n_brigades)
    n_rings = max(2, round(RING_MEMBER_SHARE * n_accounts / np.mean(RING_SIZE)))
    ring_born = np.clip(days * rng.beta(3.0, 1.6, n_rings) - 20, -30, days - 15)
    ring, ring_created = _groups(rng, n_rings, RING_SIZE, ring_born, 3.0)
    ring_sizes = np.bincount(ring, minlength=n_rings)
    ring_rank = np.arange(ring.size) - np.repeat(np.cumsum(ring_sizes) - ring_sizes, ring_sizes)
    ring_seller = ring_rank < 1 + (ring_sizes[ring] >= 7)
    ring_until = (ring_born + 3 + rng.exponential(RING_LIFETIME_DAYS, n_rings))[ring]

    brigade_born = rng.uniform(-60, days - 10, n_brigades)
    brigade, brigade_created = _groups(rng, n_brigades, BRIGADE_SIZE, brigade_born, 1.0)

    n_staff = max(5, round(n_accounts * STAFF_PER_ACCOUNT))
    n_open = max(round((n_accounts - ring.size - brigade.size - n_staff) / (1 + SUCCESSOR_SHARE)), 200)
    created, seller, kind = _ordinary_accounts(rng, n_open, days)
    until, person, next_created, next_until = _careers(rng, created, kind, days)

    n_rest = ring.size + brigade.size + n_staff
    created = np.concatenate([created, next_created, ring_created, brigade_created, -rng.uniform(400, 1500, n_staff)])
    seller = np.concatenate([seller, seller[person], ring_seller, np.zeros(brigade.size + n_staff, bool)])
    kind = np.concatenate([
        kind, kind[person],
        np.full(ring.size, KIND["fraud_ring"], np.int8),
        np.full(brigade.size, KIND["brigader"], np.int8),
        np.full(n_staff, KIND["moderator"], np.int8),
    ]).astype(np.int8)
    group = np.concatenate([np.full(n_open + person.size, -1), ring, n_rings + brigade, np.full(n_staff, -1)])
    until = np.concatenate([until, next_until, ring_until, np.full(brigade.size + n_staff, np.inf)])
    person = np.concatenate([np.arange(n_open), person, n_open + person.size + np.arange(n_rest)])
    order = np.argsort(created, kind="stable")  # ids are handed out in creation order
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return _traits(rng, created[order], seller[order], kind[order], group[order], until[order],
                   position[person[order]], days)


def _traits(rng: np.random.Generator, created: np.ndarray, seller: np.ndarray, kind: np.ndarray, group: np.ndarray,
            until: np.ndarray, person: np.ndarray, days: int) -> Population:
    """Latent traits given kind: who is verified, credible, active, and how they misbehave.

    Traits belong to the person: an account someone comes back with behaves like their first.
    """
    n = created.size
    is_ = {name: kind == KIND[name] for name in KINDS}
    age_years = np.maximum(days - created, 0) / 365
    p_verified = np.where(seller, 0.35 + 0.5 * (1 - np.exp(-age_years / 1.5)), 0.15 + 0.35 * (1 - np.exp(-age_years / 2)))
    p_verified = np.select(
        [is_["scam_seller"], is_["payment_fraudster"], is_["fraud_ring"] | is_["brigader"],
         is_["moderator"] | is_["account_takeover"]],
        [0.15, 0.08, 0.0, 1.0], p_verified)
    verified = rng.random(n) < p_verified

    serial = is_["normal"] & (rng.random(n) < SERIAL_FALSE_REPORTER_RATE)
    credibility = rng.beta(7, 2, n)
    low_credibility = ((serial, (1, 9)), (is_["harasser"], (2, 5)), (is_["payment_fraudster"], (3, 4)),
                       (is_["fraud_ring"], (2, 6)), (is_["brigader"], (1, 12)))
    for mask, (a, b) in low_credibility:
        credibility[mask] = rng.beta(a, b, mask.sum())
    propensity = rng.lognormal(0, 0.8, n) * np.select([serial, is_["harasser"]], [25.0, 3.0], 1.0)

    activity = np.where(seller, rng.lognormal(0, 1.3, n), rng.lognormal(0, 1.0, n))
    activity *= np.select(
        [is_["payment_fraudster"], is_["scam_seller"], is_["fraud_ring"], is_["brigader"], is_["moderator"]],
        [1.6, 1.4, 0.4, 0.05, 0.0], 1.0)
    incident_rate = rng.lognormal(0, 0.9, n) * np.select(
        [is_["abusive_streamer"], is_["harasser"], is_["fraud_ring"], is_["scam_seller"]], [1.0, 0.7, 0.5, 0.4], 0.0)
    bad = ~(is_["normal"] | is_["moderator"] | is_["brigader"])
    severity_shift = rng.normal(0, np.where(bad, 0.4, 0.2))

    late_rate, never_rate = rng.beta(1.2, 30, n), rng.beta(0.5, 80, n)
    shipping = ((is_["sloppy_shipper"], (6, 12), (1, 12)), (is_["scam_seller"], (2, 8), (5, 6)),
                (is_["fraud_ring"], (2, 18), (1, 19)))
    for mask, late, never in shipping:
        late_rate[mask], never_rate[mask] = rng.beta(*late, mask.sum()), rng.beta(*never, mask.sum())
    late_rate, never_rate = np.where(seller, late_rate, 0.0), np.where(seller, never_rate, 0.0)

    credibility, propensity, activity, incident_rate, severity_shift, late_rate, never_rate = (
        x[person] for x in (credibility, propensity, activity, incident_rate, severity_shift, late_rate, never_rate))
    takeover = np.where(is_["account_takeover"], rng.uniform(0, days, n), np.nan)
    return Population(created, seller, kind, verified, credibility, propensity, activity, incident_rate,
                      severity_shift, late_rate, never_rate, takeover, group, until)


# ----------------------------------------------------------------------------------------------
# Orders


@dataclass(frozen=True)
class Market:
    """Every order, sorted by creation time; times in days, nan where the event never happens."""

    buyer: np.ndarray
    seller: np.ndarray
    created: np.ndarray
    amount: np.ndarray
    has_show: np.ndarray
    ship_by: np.ndarray
    shipped: np.ndarray
    delivered: np.ndarray
    cancelled: np.ndarray
    refunded: np.ndarray
    fraud_known: np.ndarray  # nan unless the order is fraud (may fall after the period)
    status: np.ndarray  # ON_TIME / LATE / NEVER / CANCELLED
    problem: np.ndarray  # index into PROBLEMS
    p_fraud: np.ndarray
    fraud: np.ndarray
    kind: np.ndarray  # 0 ordinary, 1 fraud ring, 2 takeover spree

    @property
    def size(self) -> int:
        return self.created.size

    def subset(self, keep: np.ndarray) -> tuple["Market", np.ndarray]:
        """The kept orders, and where each old order now sits (-1 if dropped)."""
        remap = np.where(keep, np.cumsum(keep) - 1, -1)
        return Market(*(getattr(self, f.name)[keep] for f in fields(self))), remap


def _ring_orders(rng: np.random.Generator, pop: Population, clock: Clock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rings trade among themselves: ring buyers buy from ring sellers once the ring exists."""
    members = np.flatnonzero(pop.kind == KIND["fraud_ring"])
    ring = pop.group[members]
    order = np.lexsort((~pop.seller[members], ring))  # per ring: sellers first, then buyers
    members, ring = members[order], ring[order]
    rings, first, size = np.unique(ring, return_index=True, return_counts=True)
    n_sellers = np.add.reduceat(pop.seller[members].astype(np.int64), first)
    born = np.maximum.reduceat(pop.created[members], first)
    counts = rng.poisson(size * RING_ORDERS_PER_MEMBER * np.clip(clock.days - born, 0, None) / clock.days)
    which = np.repeat(np.arange(rings.size), counts)
    t = clock.draw(rng, which.size, lo=np.maximum(born[which], 0) + 0.5)
    seller = members[first[which] + (rng.random(which.size) * n_sellers[which]).astype(np.int64)]
    n_buyers = size[which] - n_sellers[which]
    buyer = members[first[which] + n_sellers[which] + (rng.random(which.size) * n_buyers).astype(np.int64)]
    return t, buyer, seller


def _spree_orders(rng: np.random.Generator, pop: Population, sellers: TimedPool, days: int,
                  until: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right after a takeover the attacker buys fast and big from whoever is selling."""
    victims = np.flatnonzero(pop.kind == KIND["account_takeover"])
    buyer = np.repeat(victims, rng.poisson(TAKEOVER_SPREE_ORDERS, victims.size))
    t = pop.takeover[buyer] + rng.exponential(TAKEOVER_SPREE_DAYS, buyer.size)
    keep = t < days
    t, buyer = t[keep], buyer[keep]
    return t, buyer, sellers.draw(rng, t, until)


def make_market(rng: np.random.Generator, pop: Population, clock: Clock, n_orders: int) -> Market:
    """Orders from ordinary traffic, fraud rings and takeover sprees, with fulfilment and fraud.

    Nobody trades after their account went quiet (pop.until).
    """
    until = pop.until
    idx = np.arange(pop.size)
    buyers = TimedPool.of(idx[~pop.seller], pop.created[~pop.seller], pop.activity[~pop.seller])
    sellers = TimedPool.of(idx[pop.seller], pop.created[pop.seller], pop.activity[pop.seller])
    ring_t, ring_b, ring_s = _ring_orders(rng, pop, clock)
    spree_t, spree_b, spree_s = _spree_orders(rng, pop, sellers, clock.days, until)
    n_plain = max(n_orders - ring_t.size - spree_t.size, n_orders // 2)
    plain_t = clock.draw(rng, n_plain, lo=max(buyers.first, sellers.first, 0.0))
    t = np.concatenate([plain_t, ring_t, spree_t])
    buyer = np.concatenate([buyers.draw(rng, plain_t, until), ring_b, spree_b])
    seller = np.concatenate([sellers.draw(rng, plain_t, until), ring_s, spree_s])
    kind = np.concatenate([np.zeros(n_plain, np.int8), np.ones(ring_t.size, np.int8), np.full(spree_t.size, 2, np.int8)])
    open_ = (until[buyer] > t) & (until[seller] > t)
    order = np.argsort(t, kind="stable")
    order = order[open_[order]]
    t, buyer, seller, kind = t[order], buyer[order], seller[order], kind[order]

    amount = rng.lognormal(AMOUNT_LOG_MEAN, AMOUNT_LOG_SD, t.size) * np.select([kind == 1, kind == 2], [2.5, 3.0], 1.0)
    amount = np.round(np.maximum(amount, 1.0), 2)
    has_show = rng.random(t.size) < np.select([kind == 1, kind == 2], [0.9, 0.5], SHOW_SHARE)
    p_fraud = _order_fraud_probability(pop, buyer, seller, t, amount, kind, clock.days)
    fraud = rng.random(t.size) < p_fraud
    return _fulfil(rng, pop, buyer, seller, t, amount, has_show, p_fraud, fraud, kind)


def _order_fraud_probability(pop: Population, buyer: np.ndarray, seller: np.ndarray, t: np.ndarray, amount: np.ndarray,
                             kind: np.ndarray, days: int) -> np.ndarray:
    """True chance an order ends in a chargeback: base rate drifting up, plus each bad party's share."""
    drift = 0.4 + 1.2 * t / days
    base = BASE_ORDER_FRAUD * drift * np.clip((amount / np.exp(AMOUNT_LOG_MEAN)) ** 0.25, 0.5, 2.5)
    bk, sk = pop.kind[buyer], pop.kind[seller]
    from_buyer = np.select(
        [kind == 2, kind == 1, bk == KIND["payment_fraudster"], bk == KIND["harasser"]],
        [TAKEOVER_SPREE_FRAUD, RING_ORDER_FRAUD, PAYMENT_FRAUDSTER_ORDER_FRAUD * drift, HARASSER_ORDER_FRAUD], 0.0)
    from_seller = np.where(sk == KIND["scam_seller"], SCAM_SELLER_ORDER_FRAUD, 0.0)
    return np.clip(1 - (1 - base) * (1 - from_buyer) * (1 - from_seller), 0.0, 0.95)


def _rate_by_seller_kind(pop: Population, seller: np.ndarray, rates: dict[str, float]) -> np.ndarray:
    sk = pop.kind[seller]
    special = [k for k in rates if k != "normal"]
    return np.select([sk == KIND[k] for k in special], [rates[k] for k in special], rates["normal"])


def _fulfil(rng: np.random.Generator, pop: Population, buyer: np.ndarray, seller: np.ndarray, t: np.ndarray,
            amount: np.ndarray, has_show: np.ndarray, p_fraud: np.ndarray, fraud: np.ndarray, kind: np.ndarray) -> Market:
    """Shipping, delivery, item problems, cancellations and refunds, driven by the seller's latent rates."""
    n = t.size
    ship_by = t + rng.uniform(*SHIP_WINDOW_DAYS, n)
    p_cancel = _rate_by_seller_kind(pop, seller, CANCEL_RATE)
    late, never = pop.late_rate[seller], pop.never_rate[seller]
    u = rng.random(n)
    status = np.select(
        [u < p_cancel, u < p_cancel + (1 - p_cancel) * never, u < p_cancel + (1 - p_cancel) * (never + late)],
        [CANCELLED, NEVER, LATE], ON_TIME).astype(np.int8)
    cancelled = np.where(status == CANCELLED, t + rng.exponential(0.5, n) + 1e-3, np.nan)
    shipped = np.select(
        [status == ON_TIME, status == LATE],
        [t + rng.uniform(0.05, 1.0, n) * (ship_by - t), ship_by + rng.exponential(LATE_SHIP_MEAN_DAYS, n) + 0.01], np.nan)
    delivered = shipped + rng.gamma(TRANSIT_SHAPE, TRANSIT_SCALE_DAYS, n) + 0.1
    delivered[rng.random(n) < LOST_IN_TRANSIT] = np.nan

    scam = pop.kind[seller] == KIND["scam_seller"]
    has_problem = ~np.isnan(delivered) & (rng.random(n) < _rate_by_seller_kind(pop, seller, ITEM_PROBLEM_RATE))
    honest = rng.choice(len(PROBLEMS), n, p=HONEST_PROBLEM_MIX)
    scammy = rng.choice(len(PROBLEMS), n, p=SCAM_PROBLEM_MIX)
    problem = np.where(has_problem, np.where(scam, scammy, honest), 0).astype(np.int8)

    r = rng.random(n)
    refunded = np.select(
        [(status == NEVER) & (r < REFUND_IF_NEVER), (problem > 0) & (r < REFUND_IF_PROBLEM),
         (status == LATE) & (r < REFUND_IF_LATE), (status != CANCELLED) & (r < REFUND_OTHERWISE)],
        [ship_by + rng.uniform(3, 12, n), delivered + rng.uniform(1, 7, n),
         shipped + rng.uniform(1, 6, n), t + rng.uniform(1, 20, n)], np.nan)
    fraud_known = np.where(fraud, t + rng.gamma(CHARGEBACK_SHAPE, CHARGEBACK_SCALE_DAYS, n) + 0.01, np.nan)
    return Market(buyer, seller, t, amount, has_show, ship_by, shipped, delivered, cancelled, refunded,
                  fraud_known, status, problem, p_fraud, fraud, kind)
