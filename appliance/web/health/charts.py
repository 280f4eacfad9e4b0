"""The data behind the dashboard's plots, read from the index (the monitor's measures and changes, the
archive's daily receipts) and handed to `plots` with the words of the page's language."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask_babel import get_locale, gettext, ngettext
from sqlalchemy import Engine

from appliance.archive.statistics import daily_receipts
from appliance.monitor import trends
from appliance.practice_time import day_of, local, midnight, zone, zone_name
from appliance.web.health import plots
from appliance.web.health.plots import Plot
from appliance.web.languages import DEFAULT_LANGUAGE, day, number, size, when

LOOK_BACK_DAYS = 90
USED, FREE, DAYS_LEFT = "disk.data.used_bytes", "disk.data.free_bytes", "disk.data.days_left"
SYSTEM_FREE = "disk.system.free_bytes"


def language() -> str:
    return str(get_locale() or DEFAULT_LANGUAGE)


def dashboard_plots(engine: Engine, now: datetime) -> list[Plot]:
    """The home page's plots: disk use, images and studies a day, the UPS's last outage."""
    return [disk_plot(engine, now), *receipts_plots(engine, now), outage_plot(engine, now)]


def source_plots(engine: Engine, source: str, now: datetime) -> list[Plot]:
    """The plots of one source's detail page."""
    if source == "disk":
        return [disk_plot(engine, now), *receipts_plots(engine, now)]
    if source == "ups":
        return [outage_plot(engine, now)]
    return []


def local_midnights(since: datetime, now: datetime) -> list[datetime]:
    """Every local midnight after `since`, then `now`: where the disk plot takes a value."""
    first = day_of(since) + timedelta(days=1)
    days = (day_of(now) - first).days + 1
    moments = [midnight(first + timedelta(days=offset)) for offset in range(days)]
    return [*moments, now]


def disk_plot(engine: Engine, now: datetime) -> Plot:
    since = now - timedelta(days=LOOK_BACK_DAYS)
    used = trends.sampled(engine, USED, local_midnights(since, now), reach=timedelta(days=1))
    free, days_left = trends.latest(engine, FREE), trends.latest(engine, DAYS_LEFT)
    capacity = used[-1][1] + free[1] if used and free else None
    remaining = days_left[1] if days_left is not None and days_left[1] >= 0 else None
    texts = plots.DiskTexts(
        gettext("Disk use of the images and its forecast"),
        disk_summary(engine, used, free, remaining, now),
        gettext("Used"),
        gettext("Full"),
        gettext("Moment"),
    )
    return plots.disk_plot(used, capacity, remaining, now, since, texts, language(), zone(), disk_size)


def disk_size(value: float) -> str:
    return size(int(value))


def disk_summary(
    engine: Engine,
    used: list[tuple[datetime, float]],
    free: tuple[datetime, float] | None,
    days_left: float | None,
    now: datetime,
) -> str:
    if not used:
        return gettext("No measure of the data disk yet.")
    amounts = gettext("%(used)s used", used=size(int(used[-1][1])))
    if free is not None:
        amounts += ", " + gettext("%(free)s free", free=size(int(free[1])))
    sentences = [amounts + "."]
    if days_left is not None:
        full = local(now + timedelta(days=days_left))
        sentences.append(
            gettext(
                "At the pace of the last weeks, full in about %(days)s days (around %(day)s).",
                days=number(round(days_left)),
                day=day(full),
            )
        )
    else:
        sentences.append(gettext("No forecast of when it will be full yet."))
    system = trends.latest(engine, SYSTEM_FREE)
    if system is not None:
        sentences.append(gettext("System disk: %(free)s free.", free=size(int(system[1]))))
    return " ".join(sentences)


def receipts_plots(engine: Engine, now: datetime) -> list[Plot]:
    """Images and studies received per day over the last 90 days, as bars."""
    today = day_of(now)
    days = daily_receipts(engine, today - timedelta(days=LOOK_BACK_DAYS - 1), today, zone_name())
    images = [(each.day, each.images) for each in days]
    studies = [(each.day, each.studies) for each in days]
    return [
        plots.daily_bars(
            "images-plot",
            images,
            gettext("Images received per day (90 days)"),
            receipts_summary(images, images=True),
            (gettext("Day"), gettext("Images")),
            lambda moment, count: gettext("%(day)s: %(count)s images", day=day(moment), count=number(count)),
            language(),
        ),
        plots.daily_bars(
            "studies-plot",
            studies,
            gettext("Studies received per day (90 days)"),
            receipts_summary(studies, images=False),
            (gettext("Day"), gettext("Studies")),
            lambda moment, count: gettext("%(day)s: %(count)s studies", day=day(moment), count=number(count)),
            language(),
        ),
    ]


def receipts_summary(counts: list[tuple[date, int]], images: bool) -> str:
    """ "12 345 images in 90 days, at most 456 in one day" (or studies)."""
    total = sum(count for _, count in counts)
    if not total:
        return gettext("Nothing received in 90 days.")
    values = {"total": number(total), "most": number(max(count for _, count in counts))}
    if images:
        return ngettext(
            "%(total)s image in 90 days, at most %(most)s in one day.",
            "%(total)s images in 90 days, at most %(most)s in one day.",
            total,
            **values,
        )
    return ngettext(
        "%(total)s study in 90 days, at most %(most)s in one day.",
        "%(total)s studies in 90 days, at most %(most)s in one day.",
        total,
        **values,
    )


def outage_plot(engine: Engine, now: datetime) -> Plot:
    """The UPS's battery charge during its last outage; "no outage recorded" when none."""
    title = gettext("UPS charge during the last power cut")
    columns = (gettext("Time"), gettext("Charge"))
    outage = trends.last_outage(engine, now)
    if outage is None:
        return Plot("ups-plot", title, gettext("No power cut recorded."), plots.Frame(), columns=columns)
    since = outage.started - trends.OUTAGE_MARGIN
    until = min((outage.ended or now) + trends.OUTAGE_MARGIN, now)
    return plots.percent_plot(
        "ups-plot", outage.charge, since, until, title, outage_summary(outage), columns, language(), zone()
    )


def outage_summary(outage: trends.Outage) -> str:
    if outage.ended is None:
        text = gettext("On battery since %(start)s.", start=when(outage.started))
    else:
        text = gettext("On battery from %(start)s to %(end)s.", start=when(outage.started), end=when(outage.ended))
    if outage.charge:
        lowest = min(value for _, value in outage.charge)
        text += " " + gettext("Lowest charge: %(charge)s %%.", charge=number(round(lowest)))
    else:
        text += " " + gettext("No charge was measured during it.")
    return text
