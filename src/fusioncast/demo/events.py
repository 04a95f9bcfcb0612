"""The demo's text signal: the kinds of announced events, their notes, and notes that mean nothing.

Each :class:`DemoEvent` fixes how its notes are phrased, the lag between the note and the effect,
how long the effect lasts and its direction; :func:`classify_note` maps a note back to its event.
"""

from __future__ import annotations

from dataclasses import dataclass

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
