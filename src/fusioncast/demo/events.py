"""The demo's text signal: the kinds of announced events, their notes, and notes that mean nothing.

Each :class:`DemoEvent` fixes how its notes are phrased, the lag between the note and the effect,
how long the effect lasts and its direction; :func:`classify_note` maps a note back to its event.
:func:`draw_events` and :func:`add_noise_notes` draw a series' events and notes for the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusioncast.demo.truth import Event

#: Days between announcement notes of a series: its mean is drawn uniformly from this range.
EVENT_INTERVAL_RANGE = (15.0, 25.0)
#: Announcement notes of one series are at least this many days apart (> lag + duration).
MIN_EVENT_GAP = 10
#: Relative size of an up event (+40..+80 %) and of a down event (-30..-60 %).
UP_EFFECT_RANGE = (0.40, 0.80)
DOWN_EFFECT_RANGE = (0.30, 0.60)
#: Days between noise notes of a series: its mean is drawn uniformly from this range.
NOISE_INTERVAL_RANGE = (7.0, 10.0)
_LONG_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: How an announcement says when the event happens; ``{n}`` is the lag, ``{day}`` its weekday.
WHEN_PHRASES = ("in {n} days", "{n} days from now", "on {day}")


@dataclass(frozen=True)
class DemoEvent:
    """A kind of announced event: its note phrasings and what it does to the target."""

    key: str
    direction: int  # +1 raises sales, -1 lowers them
    lag: int  # days from the note to the first day of the effect
    duration: int  # days the effect lasts
    keyword: str  # a phrase every note of this kind contains (case-insensitive)
    templates: tuple[str, ...]  # note phrasings; ``{when}`` is replaced by a WHEN_PHRASES entry


#: The twelve event kinds: six that raise sales, six that lower them.
DEMO_EVENTS: tuple[DemoEvent, ...] = (
    DemoEvent(
        "festival",
        +1,
        4,
        3,
        "street festival",
        (
            "Street festival announced next to the store {when}",
            "City confirms a street festival outside the store {when}",
            "Street festival planned on our block {when}",
        ),
    ),
    DemoEvent(
        "marathon",
        +1,
        5,
        2,
        "marathon",
        (
            "Local marathon planned nearby {when}",
            "City marathon route passes the store {when}",
        ),
    ),
    DemoEvent(
        "school_holidays",
        +1,
        3,
        4,
        "school holidays",
        (
            "School holidays begin {when}",
            "School holidays start {when}, families expected in town",
        ),
    ),
    DemoEvent(
        "heatwave",
        +1,
        3,
        3,
        "heatwave",
        (
            "Heatwave forecast for the region {when}",
            "Weather service expects a heatwave {when}",
        ),
    ),
    DemoEvent(
        "concert",
        +1,
        4,
        2,
        "open-air concert",
        (
            "Open-air concert scheduled in the park nearby {when}",
            "Big open-air concert at the stadium next door {when}",
        ),
    ),
    DemoEvent(
        "campaign",
        +1,
        5,
        3,
        "coupon campaign",
        (
            "Regional coupon campaign for our stores starts {when}",
            "Flyers with our coupon campaign reach mailboxes {when}",
        ),
    ),
    DemoEvent(
        "road_works",
        -1,
        4,
        4,
        "road works",
        (
            "Road works will close the main entrance {when}",
            "Road works on the access road start {when}",
        ),
    ),
    DemoEvent(
        "strike",
        -1,
        3,
        3,
        "supplier strike",
        (
            "Supplier strike announced, deliveries stop {when}",
            "Drivers' union calls a supplier strike {when}",
        ),
    ),
    DemoEvent(
        "storm",
        -1,
        3,
        2,
        "storm",
        (
            "Storm warning issued for the area {when}",
            "Severe storm expected to hit the area {when}",
        ),
    ),
    DemoEvent(
        "parking",
        -1,
        5,
        3,
        "parking lot",
        (
            "Parking lot closed for resurfacing {when}",
            "Parking lot will be closed for repairs {when}",
        ),
    ),
    DemoEvent(
        "power",
        -1,
        4,
        2,
        "power outage",
        (
            "Utility company schedules a power outage {when}",
            "Planned power outage will shorten opening hours {when}",
        ),
    ),
    DemoEvent(
        "transit",
        -1,
        5,
        4,
        "bus line",
        (
            "Bus line to the store suspended {when}",
            "Bus line stop in front of the store closes {when}",
        ),
    ),
)

UP_EVENTS = tuple(e for e in DEMO_EVENTS if e.direction > 0)
DOWN_EVENTS = tuple(e for e in DEMO_EVENTS if e.direction < 0)
#: Smallest and largest lag / duration over the event kinds.
DEMO_EVENT_LAG_RANGE = (min(e.lag for e in DEMO_EVENTS), max(e.lag for e in DEMO_EVENTS))
DEMO_EVENT_DURATION_RANGE = (
    min(e.duration for e in DEMO_EVENTS),
    max(e.duration for e in DEMO_EVENTS),
)

#: Notes that do not move the target.
NOISE_NOTES: tuple[str, ...] = (
    "Staff meeting at 9am",
    "New shelf labels installed",
    "Monthly inventory count",
    "Fire drill completed",
    "Cash register software updated",
    "New trainee joined the team",
    "Freezer temperature check passed",
    "Window displays cleaned",
    "Customer survey forms restocked",
    "Manager on leave, deputy in charge",
    "Loyalty card terminal replaced",
    "Cleaning crew rescheduled to the evening",
    "Health and safety poster updated",
    "Lost and found box emptied",
)


def classify_note(note: str | None) -> DemoEvent | None:
    """The event a note announces (by its keyword), or None for a noise note or no note."""
    if not isinstance(note, str):
        return None
    text = note.lower()
    for event in DEMO_EVENTS:
        if event.keyword in text:
            return event
    return None


def interval_starts(rng: np.random.Generator, n_days: int, mean: float, min_gap: int) -> list[int]:
    """Days of a renewal process: gaps of at least ``min_gap`` with mean ``mean``."""
    p = 1.0 / max(mean - min_gap + 1.0, 1.0)
    day = int(rng.integers(0, max(int(mean), 1)))
    days = []
    while day < n_days:
        days.append(day)
        day += min_gap - 1 + int(rng.geometric(p))
    return days


def draw_events(
    rng: np.random.Generator, n_days: int, weekday: np.ndarray
) -> tuple[tuple[Event, ...], list[str | None]]:
    """The announced events of a series and its notes per day (announcements only so far)."""
    notes: list[str | None] = [None] * n_days
    events = []
    event_mean = rng.uniform(*EVENT_INTERVAL_RANGE)
    for day in interval_starts(rng, n_days, event_mean, MIN_EVENT_GAP):
        event = DEMO_EVENTS[int(rng.integers(len(DEMO_EVENTS)))]
        low, high = UP_EFFECT_RANGE if event.direction > 0 else DOWN_EFFECT_RANGE
        size = float(event.direction * rng.uniform(low, high))
        events.append(Event(event.key, day, event.lag, event.duration, size))
        when = WHEN_PHRASES[int(rng.integers(len(WHEN_PHRASES)))].format(
            n=event.lag, day=_LONG_DAY_NAMES[(weekday[day] + event.lag) % 7]
        )
        template = event.templates[int(rng.integers(len(event.templates)))]
        notes[day] = template.format(when=when)
    return tuple(events), notes


def add_noise_notes(rng: np.random.Generator, notes: list[str | None]) -> None:
    """Post noise notes into ``notes`` (one entry per day), beside any announcement of the day."""
    noise_p = 1.0 / rng.uniform(*NOISE_INTERVAL_RANGE)
    noise_days = np.flatnonzero(rng.random(len(notes)) < noise_p)
    picks = rng.integers(len(NOISE_NOTES), size=len(noise_days))
    first = rng.random(len(noise_days)) < 0.5
    for day, pick, noise_first in zip(noise_days, picks, first, strict=True):
        text = NOISE_NOTES[pick]
        if notes[day] is None:
            notes[day] = text
        else:
            pair = (text, notes[day]) if noise_first else (notes[day], text)
            notes[day] = ". ".join(pair)
