"""What the monitor tells people, by mail and in the journal: the changes of state no mail has told
about yet (`store.unalerted`), at most one mail per round, and a daily digest.

What is told, per subject (a RAID array, a disk, a service), comparing what people were last told
(the state before its first untold change) with where it is now (its last change):
- a new problem (OK, first seen or absent -> warning or critical), a worsening (warning ->
  critical): at once for critical; a warning once a later round has seen it again, or once it has
  come back (a warning that lasts one round, such as a daemon still starting, is not worth a mail);
- an improvement (critical -> warning) or a recovery (problem -> OK): once it has held for
  `IMPROVEMENT_HOLD`;
- nothing for a first-seen OK, a source absent on this box, or a subject back where people were
  last told it was (warning -> OK -> warning) and calm there for `IMPROVEMENT_HOLD`.

That hold-down is what keeps a flapping subject (a disk temperature around its threshold, free
space around 5 %) from mailing every round: the worsening is told once, the subject's return below
the threshold waits `IMPROVEMENT_HOLD`, and if it crosses back meanwhile the changes cancel out,
so a subject flapping every minute gives one mail, and one recovery when it has been calm for ten
minutes. The changes of one round go out together in one mail.

A mail the relay does not take leaves its changes untold: they go out, netted, with the next
round's (logged once until the relay answers again). With no relay configured, alerts go to the
journal only. Every alert is logged with the prefix `health alert:` (ERROR for critical, WARNING
for warning, INFO for improvements); messages and details never carry patient data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Engine

from appliance.config import Config
from appliance.monitor import mail, store
from appliance.monitor.findings import Severity
from appliance.monitor.store import Change, State
from appliance.practice_time import day_of, local, written

log = logging.getLogger(__name__)

PREFIX = "health alert:"
IMPROVEMENT_HOLD = timedelta(minutes=10)
DIGEST_CHANGES = timedelta(hours=24)
DIGEST_LINES = 50
LABELS = {Severity.CRITICAL: "CRITIQUE", Severity.WARNING: "ATTENTION", Severity.OK: "RÉTABLI"}
LEVELS = {Severity.CRITICAL: logging.ERROR, Severity.WARNING: logging.WARNING}


def level(severity: Severity | None) -> int:
    """0 no problem (first seen, OK, absent), 1 warning, 2 critical."""
    return {Severity.WARNING: 1, Severity.CRITICAL: 2}.get(severity, 0) if severity else 0


@dataclass(frozen=True)
class Story:
    """One subject's untold changes, oldest first, and its current state (None once forgotten)."""

    changes: list[Change]
    state: State | None

    @property
    def last(self) -> Change:
        return self.changes[-1]

    @property
    def before(self) -> Severity | None:
        return self.changes[0].previous

    @property
    def after(self) -> Severity:
        return self.last.severity

    @property
    def worsens(self) -> bool:
        return level(self.after) > level(self.before)

    @property
    def improves(self) -> bool:
        return level(self.after) < level(self.before)

    @property
    def shown_severity(self) -> Severity:
        """The severity the mail shows: OK for a subject no longer reported or absent now."""
        return self.after if self.after.is_problem else Severity.OK

    @property
    def unsettled(self) -> bool:
        """Whether it went through another level on the way (OK -> warning -> OK)."""
        return any(level(change.severity) != level(self.before) for change in self.changes)

    def calm(self, now: datetime) -> bool:
        return now - self.last.at >= IMPROVEMENT_HOLD

    def ready(self, now: datetime) -> bool:
        """Whether it is time to tell it (see the module's docstring)."""
        if self.worsens and self.after is Severity.CRITICAL:
            return True
        if self.worsens:
            state = self.state
            seen_again = state is not None and state.severity is self.after and state.checked_at > self.last.at
            worsened = sum(1 for change in self.changes if level(change.severity) > level(change.previous))
            return seen_again or worsened >= 2  # seen in two rounds in a row, or coming back (flapping)
        return self.calm(now)

    @property
    def since(self) -> datetime:
        state = self.state
        if state is not None and state.severity is self.after:
            return state.since
        return self.last.at

    @property
    def detail(self) -> str:
        return self.state.detail if self.state is not None and self.state.severity is self.after else self.last.detail

    @property
    def kind(self) -> str:
        if level(self.after) == 0:
            return "résolu"
        if level(self.before) == 0:
            return "nouveau problème"
        return "aggravation" if self.worsens else "amélioration"


def stories(changes: Iterable[Change], states: Iterable[State]) -> list[Story]:
    """The untold changes grouped by subject, in the order of each subject's first change."""
    current = {(state.source, state.subject): state for state in states}
    grouped: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        grouped.setdefault((change.source, change.subject), []).append(change)
    return [Story(group, current.get(key)) for key, group in grouped.items()]


@dataclass(frozen=True)
class Decision:
    """What this round tells (`told`), what it closes without telling (`silent`: nothing to say),
    and what waits for a later round (left untold in the index)."""

    told: list[Story]
    silent: list[Story]
    waiting: list[Story]

    def identifiers(self) -> list[int]:
        return [change.id for story in [*self.told, *self.silent] for change in story.changes]


def decide(changes: Iterable[Change], states: Iterable[State], now: datetime) -> Decision:
    told: list[Story] = []
    silent: list[Story] = []
    waiting: list[Story] = []
    for story in stories(changes, states):
        if not (story.worsens or story.improves):
            (waiting if story.unsettled and not story.calm(now) else silent).append(story)
        elif story.ready(now):
            told.append(story)
        else:
            waiting.append(story)
    return Decision(told, silent, waiting)


def paragraph(story: Story) -> str:
    change = story.last
    lines = [
        f"{LABELS[story.shown_severity]} — {change.source} / {change.subject} ({story.kind})",
        f"  {change.message}",
        f"  Depuis le {written(story.since)} (heure de Paris).",
    ]
    if story.detail:
        lines.append(f"  Pour le prestataire : {story.detail}")
    return "\n".join(lines)


def alert_subject(told: list[Story]) -> str:
    worst = max(told, key=lambda story: level(story.after))
    label = LABELS[worst.shown_severity]
    others = f" (et {len(told) - 1} autre(s) changement(s))" if len(told) > 1 else ""
    message = worst.last.message if len(worst.last.message) <= 100 else worst.last.message[:99] + "…"
    return f"{label} : {message}{others}"


def alert_body(config: Config, told: list[Story]) -> str:
    ordered = sorted(told, key=lambda story: -level(story.after))
    return (
        f"L'état du PACS « {config.site_name} » a changé :\n\n"
        + "\n\n".join(paragraph(story) for story in ordered)
        + "\n\nL'état complet est sur la page d'accueil de la console. "
        "Ce message est envoyé automatiquement à chaque changement d'état.\n"
    )


def journal(story: Story) -> None:
    change = story.last
    log.log(
        LEVELS.get(story.after, logging.INFO),
        "%s %s %s/%s %s -> %s: %s [%s]",
        PREFIX,
        story.kind,
        change.source,
        change.subject,
        story.before.value if story.before else "new",
        story.after.value,
        change.message,
        story.detail,
    )


class Alerter:
    """The alert mails and the daily digest of one `appliance-monitor`; remembers between rounds
    what it has logged and whether the relay was failing, so that the journal says each once."""

    def __init__(self, digest_file: Path) -> None:
        self.digest = Digest(digest_file)
        self.journaled: set[int] = set()
        self.relay_failing = False
        self.mail_disabled_said = False

    def run(self, config: Config, engine: Engine, now: datetime) -> int:
        """Tell this round's alerts, then the digest when it is due; returns how many changes were told."""
        told = self.alert(config, engine, now)
        if self.digest.due(config, now):
            self.send_digest(config, engine, now)
        return told

    def alert(self, config: Config, engine: Engine, now: datetime) -> int:
        decision = decide(store.unalerted(engine), store.current(engine), now)
        for story in decision.told:
            if story.last.id not in self.journaled:
                journal(story)
                self.journaled.add(story.last.id)
        told = decision.told
        if told and not self.deliver(config, alert_subject(told), alert_body(config, told), now):
            store.mark_alerted(engine, [change.id for story in decision.silent for change in story.changes], now)
            return 0
        store.mark_alerted(engine, decision.identifiers(), now)
        self.journaled -= {change.id for story in decision.told for change in story.changes}
        return len(decision.told)

    def deliver(self, config: Config, subject: str, body: str, now: datetime) -> bool:
        """Hand one mail to the relay; True when it took it or when no relay is configured (the
        journal is then the only channel); False (logged once) when the relay is failing."""
        if not config.mail.enabled:
            if not self.mail_disabled_said:
                log.warning("%s no mail relay or recipient configured (mail.relay_host, mail.recipients): "
                            "alerts go to the journal only", PREFIX)  # fmt: skip
                self.mail_disabled_said = True
            return True
        self.mail_disabled_said = False
        try:
            mail.send(config, subject, body, now)
        except mail.MailError as error:
            if not self.relay_failing:
                log.error("%s mail not handed to the relay, retried every round: %s", PREFIX, error)
                self.relay_failing = True
            return False
        if self.relay_failing:
            log.info("%s the relay takes mail again", PREFIX)
            self.relay_failing = False
        log.info("%s mail handed to %s: %s", PREFIX, config.mail.relay_host, subject)
        return True

    def send_digest(self, config: Config, engine: Engine, now: datetime) -> None:
        states = store.current(engine)
        recent = store.changes(engine, since=now - DIGEST_CHANGES, limit=DIGEST_LINES + 1)
        subject, body = digest_text(config, states, recent, now)
        log.info("%s daily digest: %s", PREFIX, subject)
        if self.deliver(config, subject, body, now):
            self.digest.sent(now)


def digest_text(config: Config, states: list[State], recent: list[Change], now: datetime) -> tuple[str, str]:
    """The digest's subject and body: every current problem, what is absent, the last 24 h."""
    problems = sorted(
        (state for state in states if state.severity.is_problem), key=lambda state: -level(state.severity)
    )
    absent = [f"{state.source}/{state.subject}" for state in states if state.severity is Severity.ABSENT]
    lines = [f"Bilan de santé du PACS « {config.site_name} » au {written(now)} (heure de Paris).", ""]
    if problems:
        lines.append("Problèmes en cours :")
        for state in problems:
            lines += [
                f"- {LABELS[state.severity]} — {state.source} / {state.subject} : {state.message}",
                f"  Depuis le {written(state.since)}. Pour le prestataire : {state.detail}",
            ]
    else:
        lines.append("Tout va bien : aucun problème en cours.")
    lines += ["", "Changements des dernières 24 heures :"]
    noted = [change for change in recent if level(change.severity) or level(change.previous)]
    lines += [
        f"- {written(change.at)} {change.source} / {change.subject} : "
        f"{change.previous.value if change.previous else 'nouveau'} -> {change.severity.value}, {change.message}"
        for change in reversed(noted[:DIGEST_LINES])
    ] or ["- aucun."]
    if len(recent) > DIGEST_LINES:
        lines.append("- … (les plus anciens sont dans la console)")
    if absent:
        lines += ["", f"Non présents sur ce boîtier : {', '.join(absent)}."]
    worst = max((level(state.severity) for state in problems), default=0)
    subject = (
        "Bilan quotidien : tout va bien"
        if not problems
        else (f"Bilan quotidien : {len(problems)} problème(s) en cours ({'critique' if worst == 2 else 'attention'})")
    )
    return subject, "\n".join(lines) + "\n"


class Digest:
    """When the daily digest is due: once a day from `monitor.digest_time` (Paris time); the day it
    was last sent is kept in a file so that a restart neither repeats nor skips it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def last_sent(self) -> date | None:
        try:
            return date.fromisoformat(self.path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def due(self, config: Config, now: datetime) -> bool:
        clock = local(now)
        hours, minutes = (int(part) for part in config.monitor.digest_time.split(":"))
        passed = clock.time() >= time(hours, minutes)
        last = self.last_sent()
        if last is None:  # the monitor's first start: the first digest is the next one to come
            self.write(clock.date() if passed else clock.date() - timedelta(days=1))
            return False
        return passed and last < clock.date()

    def sent(self, now: datetime) -> None:
        self.write(day_of(now))

    def write(self, day: date) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{day.isoformat()}\n", encoding="ascii")
