"""ShipStation v1 reads and writes every date in US Pacific time (PST/PDT), without an offset.

`PACIFIC` is `zoneinfo`'s America/Los_Angeles when the system has a time-zone database, else a
built-in tzinfo with the US daylight-saving rules in force since 2007 (second Sunday of March to
first Sunday of November, 02:00 local), so a slim container without tzdata still converts right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

_HOUR = timedelta(hours=1)
_STANDARD = timedelta(hours=-8)


def _sunday_on_or_after(day: date) -> date:
    return day + timedelta(days=(6 - day.weekday()) % 7)


class USPacific(tzinfo):
    """America/Los_Angeles by the post-2007 US rules (the fallback when zoneinfo has no data)."""

    def _dst_bounds(self, year: int) -> tuple[datetime, datetime]:
        # Both as naive *standard* local times: 02:00 PST in March, 01:00 PST (= 02:00 PDT) in November.
        start = datetime.combine(_sunday_on_or_after(date(year, 3, 8)), datetime.min.time()) + 2 * _HOUR
        end = datetime.combine(_sunday_on_or_after(date(year, 11, 1)), datetime.min.time()) + _HOUR
        return start, end

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return _STANDARD + self.dst(dt)

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(0)
        start, end = self._dst_bounds(dt.year)
        naive = dt.replace(tzinfo=None)
        # As zoneinfo reads them: a wall time in the repeated November hour is the first
        # (daylight) one unless fold=1; one in the skipped March hour is standard unless fold=1.
        if start <= naive < start + _HOUR:
            return _HOUR if dt.fold else timedelta(0)
        if start + _HOUR <= naive < end + (timedelta(0) if dt.fold else _HOUR):
            return _HOUR
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "PDT" if self.dst(dt) else "PST"

    def fromutc(self, dt: datetime) -> datetime:
        standard = dt.replace(tzinfo=None) + _STANDARD
        start, end = self._dst_bounds(standard.year)
        if start <= standard < end:
            return (standard + _HOUR).replace(tzinfo=self, fold=0)
        # The hour after the November change happens twice on the wall clock: mark the second.
        fold = 1 if end <= standard < end + _HOUR else 0
        return standard.replace(tzinfo=self, fold=fold)

    def __repr__(self) -> str:
        return "USPacific()"


def _load() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Los_Angeles")
    except Exception:  # ZoneInfoNotFoundError, or no zoneinfo at all
        return USPacific()


PACIFIC: tzinfo = _load()


def to_pacific(moment: datetime) -> datetime:
    """The Pacific wall-clock time of an instant (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PACIFIC)


def stamp(moment: datetime, *, fraction: bool = False) -> str:
    """ShipStation's datetime form: Pacific wall time, seven fraction digits, no offset.

    What we send is whole seconds; ShipStation's own stamps (the sandbox's) keep the fraction.
    """
    local = to_pacific(moment)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + (f"{local.microsecond:06d}0" if fraction else "0000000")


def pacific_date(moment: datetime) -> str:
    """The Pacific calendar date of an instant, `YYYY-MM-DD` (ShipStation's date-only filters)."""
    return to_pacific(moment).date().isoformat()


def parse(text: str | None) -> datetime | None:
    """A ShipStation datetime or date (Pacific, no offset) as an aware UTC datetime; None if unreadable.

    An explicit offset or `Z`, should one appear, is honoured instead.
    """
    if not text:
        return None
    value = str(text).strip().replace("Z", "+00:00")
    head, dot, rest = value.partition(".")
    if dot:
        # Seven fraction digits are more than fromisoformat takes before Python 3.11 allows: keep six.
        digits = "".join(c for c in rest if c.isdigit())
        tail = rest[len(digits):]
        value = f"{head}.{(digits + '000000')[:6]}{tail}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PACIFIC)
    return moment.astimezone(UTC)
