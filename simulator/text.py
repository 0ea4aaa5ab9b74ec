"""Report descriptions: a phrase bank and a vectorised assembler.

Text depends on the latent state, never on the drawn label: reports that are
likely valid cite evidence more often, unfounded ones are vaguer and louder,
and severe incidents use stronger words. That keeps truth_reports the best
possible predictor while still giving a text model something real to learn.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features import vocabulary as V

# Per category: (mild sentences, strong sentences).
CORE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "harassment": (
        ("They kept making rude comments about me in chat.", "They mock buyers who ask questions.",
         "They keep messaging me after I asked them to stop.", "Called me names during the auction.",
         "Was condescending to everyone in the show.", "Singled me out in chat for no reason."),
        ("Threatened to post my address if I kept bidding.", "Messages me every day and says they know where I live.",
         "Told viewers to go after me on my other accounts.", "Tried to doxx another buyer in the chat.",
         "Keeps making new accounts to message me after I blocked them."),
    ),
    "hate_speech": (
        ("Made an offensive joke about a religion.", "Said something really offensive about immigrants on stream.",
         "Used an insulting term for a group of people.", "Made derogatory comments about women in the show.",
         "Posted an offensive meme during the stream."),
        ("Used a racial slur on stream more than once.", "Was shouting slurs at a viewer.",
         "Went on a hateful rant about an ethnic group.", "Used slurs and told people like me to leave the app.",
         "Repeated a slur after being asked to stop."),
    ),
    "threats_of_harm": (
        ("Said I would regret leaving a bad review.", "Made a threatening comment after I asked for a refund.",
         "Told me to watch my back.", "Said they would come after me if I reported them."),
        ("Said they would kill me.", "Threatened to show up at my address.",
         "Showed a weapon on camera and said it was for people who file chargebacks.",
         "Posted my home address and said they were coming.", "Threatened to hurt me and my family."),
    ),
    "violent_content": (
        ("Showed a violent video clip during the stream.", "Joked about hurting animals on stream.",
         "Had a fight video playing in the background of the show."),
        ("Showed graphic footage of someone getting hurt.", "Was waving a weapon around on camera.",
         "Showed gore on stream while kids were watching.", "Pointed a gun at the camera during the show."),
    ),
    "explicit_content": (
        ("Was dressed inappropriately on stream.", "Made sexual jokes in a show for collectors.",
         "Had explicit pictures visible in the background.", "The profile has suggestive pictures."),
        ("Showed explicit nudity on stream.", "Sent me explicit pictures in a DM.",
         "Streamed sexual content in a family friendly show.", "Exposed themselves on camera."),
    ),
    "disruptive_auction_behavior": (
        ("Keeps winning auctions and then not paying.", "Spams the chat with off-topic questions during auctions.",
         "Bids items up with no intention to buy.", "Interrupts every auction with nonsense."),
        ("Won ten auctions in a row and cancelled every one.", "Has been sabotaging every auction in my show for a week.",
         "Bids on everything and then demands refunds."),
    ),
    "spam": (
        ("Keeps posting links in chat.", "Advertises another site in every show.", "Posts the same message over and over.",
         "Sends me promo messages every day."),
        ("Posted a phishing link asking people to log in.", "Is flooding the chat with links to a fake giveaway.",
         "Sent me a link asking for my payment details."),
    ),
    "shipping_delay": (
        ("My order has not shipped yet.", "It has been a week with no tracking update.",
         "The package is taking much longer than promised.", "Seller said it would ship in two days and it has not.",
         "The order still says label created."),
        ("My order never arrived and the seller stopped answering.", "Three weeks and still nothing shipped.",
         "Tracking has not moved in weeks and the seller ignores me.", "Seller keeps promising to ship and never does."),
    ),
    "missing_item": (
        ("One card was missing from the lot.", "Got the package but an item was missing.",
         "The box came without the accessory in the listing.", "Only part of my order was in the package."),
        ("I received an empty box.", "The package was empty except for packing paper.",
         "The box arrived with nothing inside.", "The order never arrived at all."),
    ),
    "wrong_item": (
        ("Received a different card than the one I won.", "Got the wrong size.", "Sent a different color than listed.",
         "The item does not match what was shown."),
        ("Sent a completely different and much cheaper item.", "Got a random bulk card instead of the graded one.",
         "Received junk instead of what I paid for."),
    ),
    "damaged_item": (
        ("The card arrived bent.", "The box was crushed in shipping.", "The item arrived scratched.",
         "One corner was dinged."),
        ("It arrived smashed to pieces.", "The item was broken and packed with no protection at all.",
         "The slab was cracked and the card inside is damaged."),
    ),
    "counterfeit": (
        ("I think the item might not be authentic.", "The stitching looks off to me.", "The card looks like a reprint.",
         "The logo seems slightly wrong."),
        ("The item is fake.", "It is counterfeit, the authentication check failed.",
         "This seller is selling counterfeit sneakers.", "Obvious fake slab with a copied serial number."),
    ),
    "misrepresented_item": (
        ("The condition is worse than described.", "It was listed as mint but has wear.",
         "The listing photos were not of the actual item.", "The description left out the damage."),
        ("The item is nothing like what was shown on stream.", "They switched the item after I won.",
         "Showed one card on stream and shipped a fake.", "Bait and switch on the graded card."),
    ),
    "non_delivery_scam": (
        ("I paid and the seller disappeared.", "Never got my item and the seller will not respond.",
         "Seller took my payment and never shipped."),
        ("This seller takes money and never ships anything.", "The tracking number is fake and belongs to another city.",
         "It is a scam, lots of buyers never got their items.", "Uploaded a fake tracking number and kept my money."),
    ),
    "payment_fraud": (
        ("The buyer's payment looks suspicious.", "The buyer wants to pay outside the app.",
         "The buyer's name and card do not match.", "The buyer asked to change the shipping address after paying."),
        ("The buyer used a stolen card.", "The buyer filed a chargeback after receiving the item.",
         "Several chargebacks from this buyer.", "This buyer is using stolen cards across accounts."),
    ),
    "shill_bidding": (
        ("The same accounts keep bidding up prices.", "Someone always bids right before the end and never pays.",
         "The bidding looks coordinated.", "Prices jump every time I bid."),
        ("The seller is using fake accounts to shill bid.", "The seller's friends bid up every item.",
         "The same group of new accounts bids on everything and cancels.", "Caught the seller bidding on their own items."),
    ),
}
EVIDENCE: dict[str, tuple[str, ...]] = {
    "behavioral": ("I have a screenshot of the chat.", "I screen recorded it.", "Chat log attached.",
                   "Other viewers saw it too, check the replay.", "Recording saved if you need it."),
    "logistics": ("Tracking number shows no movement.", "I have photos of the package.",
                  "Photo of the box and label attached.", "The tracking page only says label created.",
                  "Photos of what arrived are attached."),
    "fraud": ("I have photos next to a genuine one.", "Screenshots of the listing attached.", "I have the bank notice.",
              "Receipt and screenshots attached.", "The serial number does not match the grading site."),
}
MINUTE = tuple(f"It happened around minute {m} of the show." for m in range(1, 60))
EMOTION = ("This is TERRIBLE!!!", "I just don't like this seller.", "Worst experience ever!!!",
           "Everyone needs to report this account!", "Ban them now!!!", "Total scammer, everyone knows it.",
           "I don't trust them at all.", "Please do something, this is ridiculous!!", "Unbelievable.",
           "They are the worst on this app.", "Honestly just a terrible person.")
OPENERS = ("Hi,", "Hello,", "Please look into this:", "Reporting this account.", "Not sure where else to report this.",
           "Hey team,")
CLOSERS = ("Thanks.", "Please help.", "Thank you for checking.", "Can someone review this?", "Please take action.")
MODERATOR_NOTES = ("Clip saved.", "Reviewed the replay.", "Second moderator agrees.", "Seen live.")
MODERATOR_DEGREE = ("possible", "clear", "serious")  # the last one for likely severe incidents
MODERATOR_WHERE = {"livestream": "during the show.", "profile": "on the profile.", "direct_message": "in messages."}
DETECTED_IN = {"livestream": "in the live stream", "system": "in payment and bidding signals"}
MAX_HOURS_LATE = 48
HOURS_LATE = tuple(f"has not shipped {h} hours after its ship-by deadline." for h in range(MAX_HOURS_LATE + 1))

P_EMPTY, P_EMPTY_UNFOUNDED = 0.05, 0.06
P_EVIDENCE, P_EVIDENCE_VALID = 0.08, 0.6
P_EMOTION, P_EMOTION_UNFOUNDED, P_EMOTION_PILE_ON = 0.08, 0.45, 0.2
P_SHOUTING = 0.35
P_OPENER, P_CLOSER = 0.35, 0.3
P_COPY_PASTE = 0.8  # brigades paste the same text


def _bank(phrases: tuple[str, ...] | list[str], idx: np.ndarray, use: np.ndarray | None = None) -> pa.Array:
    """Phrase idx (followed by a space) where use is true, empty elsewhere."""
    arr = pa.array([p + " " for p in phrases] + [""], pa.string())
    if use is not None:
        idx = np.where(use, idx, len(phrases))
    return arr.take(pa.array(idx))


def _any_of(rng: np.random.Generator, phrases: tuple[str, ...], n: int, use: np.ndarray | None = None) -> pa.Array:
    return _bank(phrases, rng.integers(0, len(phrases), n), use)


def _core(category: np.ndarray, strong: np.ndarray, u: np.ndarray) -> pa.Array:
    """A sentence from the category's mild or strong list."""
    flat: list[str] = []
    offset = np.zeros((len(V.CATEGORIES), 2), np.int64)
    count = np.zeros((len(V.CATEGORIES), 2), np.int64)
    for i, c in enumerate(V.CATEGORIES):
        for level in (0, 1):
            offset[i, level], count[i, level] = len(flat), len(CORE[c][level])
            flat += CORE[c][level]
    level = strong.astype(np.int64)
    return _bank(flat, offset[category, level] + (u * count[category, level]).astype(np.int64))


def _evidence(rng: np.random.Generator, category: np.ndarray, use: np.ndarray) -> pa.Array:
    family = np.array([V.FAMILIES.index(V.CATEGORY_FAMILY[c]) for c in V.CATEGORIES])[category]
    flat = [p for f in V.FAMILIES for p in EVIDENCE[f]]
    per = len(EVIDENCE["behavioral"])
    return _bank(flat, family * per + rng.integers(0, per, category.size), use)


def _join(parts: list[pa.Array]) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.binary_join_element_wise(*parts, ""))


def _order_mention(order_ids: pa.Array, use: np.ndarray) -> pa.Array:
    text = pc.binary_join_element_wise("Order ", order_ids, ". ", "")
    return pc.if_else(pa.array(use), pc.fill_null(text, ""), "")


def describe(rng: np.random.Generator, category: np.ndarray, channel: np.ndarray, rtype: np.ndarray, p_valid: np.ndarray,
             p_high: np.ndarray, pile_on: np.ndarray, incident: np.ndarray, order_ids: pa.Array,
             hours_late: np.ndarray) -> pa.Array:
    """One description per report.

    p_high is the latent chance the incident is high or critical; pile_on marks
    brigading and retaliation, whose text is copied and angry; hours_late is
    what the fulfilment monitor saw when it flagged an order.
    """
    n = category.size
    strong = rng.random(n) < p_high
    u = rng.random(n)
    copied = pile_on & (incident >= 0) & (rng.random(n) < P_COPY_PASTE)
    event_u = rng.random(max(int(incident.max(initial=-1)) + 1, 1))
    u = np.where(copied, event_u[np.maximum(incident, 0)], u)
    evidence = rng.random(n) < P_EVIDENCE + P_EVIDENCE_VALID * p_valid
    emotion = rng.random(n) < P_EMOTION + P_EMOTION_UNFOUNDED * (1 - p_valid) + P_EMOTION_PILE_ON * pile_on
    behavioral = np.array([V.CATEGORY_FAMILY[c] == "behavioral" for c in V.CATEGORIES])[category]
    live = channel == V.CHANNELS.index("livestream")
    has_order = pc.is_valid(order_ids).to_numpy(zero_copy_only=False)
    user_text = _join([
        _any_of(rng, OPENERS, n, rng.random(n) < P_OPENER),
        _core(category, strong, u),
        _evidence(rng, category, evidence),
        _bank(MINUTE, rng.integers(0, len(MINUTE), n), evidence & behavioral & live & (rng.random(n) < 0.5)),
        _order_mention(order_ids, evidence & (rng.random(n) < 0.6)),
        _any_of(rng, EMOTION, n, emotion),
        _any_of(rng, CLOSERS, n, rng.random(n) < P_CLOSER),
    ])
    shout = emotion & (rng.random(n) < P_SHOUTING)
    user_text = pc.if_else(pa.array(shout), pc.utf8_upper(user_text), user_text)
    empty = rng.random(n) < P_EMPTY + P_EMPTY_UNFOUNDED * (1 - p_valid)
    user_text = pc.if_else(pa.array(empty), "", user_text)

    labels = pa.array([c.replace("_", " ") for c in V.CATEGORIES]).take(pa.array(category))
    moderator_text = _join([
        pa.array(np.full(n, "Moderator note: ")),
        _bank(MODERATOR_DEGREE, np.where(strong, 2, rng.integers(0, 2, n))),
        pc.binary_join_element_wise(labels, " ", ""),
        _bank([MODERATOR_WHERE.get(c, "") for c in V.CHANNELS], channel),
        _any_of(rng, MODERATOR_NOTES, n),
    ])
    score = np.clip(0.55 + 0.3 * p_valid + rng.normal(0, 0.12, n), 0.5, 0.99)
    where = pa.array([DETECTED_IN.get(c, "in activity") for c in V.CHANNELS]).take(pa.array(channel))
    scores = pa.array([f"{s / 100:.2f}" for s in range(100)]).take(pa.array(np.round(score * 100).astype(np.int64)))
    score_text = pc.binary_join_element_wise("(score ", scores, ").", "")
    detector_text = pc.binary_join_element_wise("Automated flag: possible", labels, where, score_text, " ")
    engine_text = pc.binary_join_element_wise(
        "Fulfilment monitor: order", pc.fill_null(order_ids, "?"),
        _bank(HOURS_LATE, np.clip(hours_late, 0, MAX_HOURS_LATE)), " ")
    engine_text = pc.utf8_trim_whitespace(engine_text)

    rt = {r: rtype == V.REPORTER_TYPES.index(r) for r in V.REPORTER_TYPES}
    out = pc.if_else(pa.array(rt["moderator"]), moderator_text, user_text)
    out = pc.if_else(pa.array(rt["automated_detection"]), detector_text, out)
    out = pc.if_else(pa.array(rt["rules_engine"] & has_order), engine_text, out)
    return out
