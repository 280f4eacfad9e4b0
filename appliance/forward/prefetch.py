"""Prefetch of priors: when an order arrives from the RIS, the patient's previous studies of the
same modality (and body region, when the rule asks) are fetched from the remote archives before
the exam, so that the radiologist has the comparison at hand.

Two durable steps, both outbox messages delivered by the worker:
1. `queue_orders` (a change-feed consumer of `order-scheduled`) queues one search per order and
   remote archive (`prefetch:<AE>`, cause `order:<step>`), in the transaction moving its cursor;
2. the search's sender asks the remote archive for the patient's studies (C-FIND, DICOM edge),
   `chosen_priors` picks those the rule wants, and `queue_priors` queues a fetch for each
   (`retrieve:<AE>`, see `forward.remote`): a study is fetched once, whatever asks for it again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import Connection, Engine, select

from appliance import practice_time
from appliance.archive import changes
from appliance.config import Config
from appliance.db.schema import patient, scheduled_step, study
from appliance.forward.remote import Fetch, queue_fetch
from appliance.outbox import enqueue
from appliance.patients.names import fold

CONSUMER = "prefetch"
CHANNEL = "prefetch"
KIND = "C-FIND"
BATCH = 100
REGION_WORD = re.compile(r"[A-Z]{4,}")
# Words of a procedure description that say nothing of the body region.
NOT_A_REGION = frozenset({"SCANNER", "IRM", "SANS", "AVEC", "INJECTION", "CONTRASTE", "EXAMEN", "IMAGERIE",
                          "RADIOGRAPHIE", "ECHOGRAPHIE", "TOMODENSITOMETRIE", "CONTROLE", "BILAN", "IMAGE",
                          "IMAGES", "SERIE", "DOSE", "FAIBLE", "STANDARD"})  # fmt: skip


@dataclass(frozen=True)
class PriorsRequest:
    """What to look for at a remote archive for one order (its payload in the outbox)."""

    patient_id: str
    issuer_of_patient_id: str
    modalities: tuple[str, ...]
    procedure_description: str
    same_body_region: bool
    since: str  # YYYYMMDD, included
    maximum_studies: int
    order_study_instance_uid: str
    accession_number: str

    def encoded(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()


def request_of(payload: bytes) -> PriorsRequest:
    document = json.loads(payload)
    document["modalities"] = tuple(document["modalities"])
    return PriorsRequest(**document)


def prefetch_channel(peer_ae_title: str) -> str:
    return f"{CHANNEL}:{peer_ae_title}"


def queue_orders(engine: Engine, config: Config, today: date | None = None, limit: int = BATCH) -> int:
    """Queue the priors' searches of the orders scheduled since the last round; how many orders
    were read (0: nothing new)."""
    with engine.begin() as connection:
        cursor = changes.cursor_of(connection, CONSUMER)
        read = changes.read_after(connection, cursor, {changes.ORDER_SCHEDULED}, limit)
        if not read:
            return 0
        for found in read:
            if found.scheduled_step_pk is not None:
                queue_order(connection, config, found.scheduled_step_pk, today or practice_time.today())
        changes.advance(connection, CONSUMER, read[-1].id)
    return len(read)


ORDER = select(
    scheduled_step.c.modality,
    scheduled_step.c.requested_procedure_description,
    scheduled_step.c.study_instance_uid,
    scheduled_step.c.accession_number,
    patient.c.patient_id,
    patient.c.issuer_of_patient_id,
).select_from(scheduled_step.join(patient, patient.c.id == scheduled_step.c.patient_pk))


def queue_order(connection: Connection, config: Config, step_pk: int, today: date) -> int:
    """One search per remote archive for the order of step `step_pk`, when a rule covers its
    modality; how many were queued."""
    row = connection.execute(ORDER.where(scheduled_step.c.id == step_pk)).first()
    if row is None or not row.patient_id:
        return 0
    rule = config.forward.prefetch_rule(row.modality)
    if rule is None:
        return 0
    since = years_before(today, rule.years_back)
    request = PriorsRequest(
        row.patient_id, row.issuer_of_patient_id or "", rule.prior_modalities or (row.modality,),
        row.requested_procedure_description, rule.same_body_region, since.strftime("%Y%m%d"), rule.maximum_studies,
        row.study_instance_uid, row.accession_number,
    )  # fmt: skip
    queued = 0
    for peer in config.remote_archives:
        summary = f"priors of order {row.accession_number or step_pk} ({', '.join(request.modalities)})"
        queued += enqueue(connection, prefetch_channel(peer.ae_title), f"order:{step_pk}", KIND, request.encoded(),
                          summary)  # fmt: skip
    return queued


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier (28 February for a 29th that year lacks)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def region_words(text: str) -> set[str]:
    """The words of a description that may name a body region (accents and case aside)."""
    return {word for word in REGION_WORD.findall(fold(text)) if word not in NOT_A_REGION}


def modalities_of(answer: Mapping[str, str]) -> set[str]:
    return {part.strip().upper() for part in answer.get("ModalitiesInStudy", "").split("\\") if part.strip()}


def chosen_priors(request: PriorsRequest, answers: Sequence[Mapping[str, str]], archived: set[str]) -> list[str]:
    """The Study Instance UIDs to fetch among a remote archive's answers, most recent first: of the
    patient, of a wanted modality (a study whose modalities are not answered is kept), on or after
    `since`, of the same region when asked, neither the order's own study nor one archived here."""
    wanted = {modality.upper() for modality in request.modalities}
    region = region_words(request.procedure_description)
    kept: list[Mapping[str, str]] = []
    for answer in answers:
        uid = answer.get("StudyInstanceUID", "")
        if not uid or uid in archived or uid == request.order_study_instance_uid:
            continue
        if answer.get("PatientID", request.patient_id) != request.patient_id:
            continue
        found = modalities_of(answer)
        if found and not found & wanted:
            continue
        if answer.get("StudyDate", "") and answer["StudyDate"] < request.since:
            continue
        if request.same_body_region and region and not region & region_words(answer.get("StudyDescription", "")):
            continue
        kept.append(answer)
    kept.sort(key=lambda answer: (answer.get("StudyDate", ""), answer.get("StudyTime", "")), reverse=True)
    return [answer["StudyInstanceUID"] for answer in kept[: request.maximum_studies]]


def archived_studies(engine: Engine, study_instance_uids: Sequence[str]) -> set[str]:
    """Those of the studies already archived here."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(study.c.study_instance_uid).where(study.c.study_instance_uid.in_(list(study_instance_uids)))
        )
        return {str(uid) for (uid,) in rows}


def queue_priors(
    engine: Engine, peer_ae_title: str, request: PriorsRequest, answers: Sequence[Mapping[str, str]]
) -> list[str]:
    """Queue a fetch of each prior chosen among `answers`; return the chosen studies."""
    uids = [answer.get("StudyInstanceUID", "") for answer in answers]
    chosen = chosen_priors(request, answers, archived_studies(engine, [uid for uid in uids if uid]))
    reason = f"prefetch for order {request.accession_number}" if request.accession_number else "prefetch"
    with engine.begin() as connection:
        for uid in chosen:
            queue_fetch(connection, peer_ae_title, Fetch(uid, request.patient_id, reason))
    return chosen
