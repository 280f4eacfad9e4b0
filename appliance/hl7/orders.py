"""ORM^O01 (IHE SWF, with or without ZDS) and OMI^O23 (SWF.b, with IPC) to worklist `Order` values.

Field mapping (INTERFACE.md has the full table): ORC-1 control, ORC-2/ORC-3 placer/filler order
numbers, ORC-5 status, ORC-7.4 (or OBR-27.4, TQ1-7) start, OBR-4 procedure code, OBR-16 requesting
physician, OBR-18 accession number, OBR-19 requested procedure ID, OBR-20 SPS ID, OBR-24 modality,
ZDS-1 Study Instance UID, PV1-8 referring physician; OMI: IPC-1..9 override what they carry.
Every field read is checked first against the DICOM value representation it becomes (`FIELDS`):
a wrong one raises ContentError at its place (ERR-2), and nothing of the message is applied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime

from appliance.hl7.acks import ErrorCode
from appliance.hl7.dicom_values import (
    LONG_STRING,
    SHORT_STRING,
    Problem,
    ae_title_problem,
    characters_problem,
    code_string_problem,
    person_name_problem,
    text_problem,
    timestamp_problem,
    uid_problem,
)
from appliance.hl7.er7 import Message, Segment
from appliance.hl7.segments import ContentError, checked, not_null, physician_name, refuse_if
from appliance.worklist.orders import CodedEntry, Order, OrderControl

CONTROLS = {
    "NW": OrderControl.NEW,
    "XO": OrderControl.CHANGE,
    "CA": OrderControl.CANCEL,
    "OC": OrderControl.CANCEL,  # order cancelled (as some RIS send it)
    "DC": OrderControl.DISCONTINUE,
    "OD": OrderControl.DISCONTINUE,
    "SC": OrderControl.STATUS,
}


def description_problem(value: str) -> str:
    """LO free text (descriptions, code meaning, reason): line breaks become spaces and the text is
    cut at 64 characters, as DICOM LO allows no more; a backslash or another control is refused."""
    return characters_problem(value.replace("\n", " "))


LO, SH = text_problem(LONG_STRING), text_problem(SHORT_STRING)
PLACER, FILLER = "numéro de demande / placer order number", "numéro d'exécution / filler order number"
START, PRIORITY = "début prévu / scheduled start", "priorité / priority"
ACCESSION, PROCEDURE_ID = "numéro d'accession / accession number", "ID de procédure / requested procedure ID"
STEP_ID, MODALITY = "ID d'étape / scheduled procedure step ID", "modalité / modality"
DESCRIPTION = "libellé / description"
# The fields an order reads, by segment: (field, component, what the value must be, its name).
FIELDS: dict[str, tuple[tuple[int, int, Problem, str], ...]] = {
    "ORC": (
        (2, 1, LO, PLACER), (3, 1, LO, FILLER), (7, 4, timestamp_problem, START),
        (7, 6, code_string_problem, PRIORITY),
    ),
    "OBR": (
        (2, 1, LO, PLACER), (3, 1, LO, FILLER), (4, 1, SH, "code de l'examen / procedure code"),
        (4, 2, description_problem, DESCRIPTION), (4, 3, SH, "système de codage / coding scheme"),
        (4, 5, description_problem, DESCRIPTION), (18, 1, SH, ACCESSION), (19, 1, SH, PROCEDURE_ID),
        (20, 1, SH, STEP_ID), (24, 1, code_string_problem, MODALITY), (27, 4, timestamp_problem, START),
        (31, 1, description_problem, "motif / reason"), (31, 2, description_problem, "motif / reason"),
        (36, 1, timestamp_problem, START),
    ),
    "TQ1": ((7, 1, timestamp_problem, START), (9, 1, code_string_problem, PRIORITY)),
    "ZDS": ((1, 1, uid_problem, "Study Instance UID"),),
    "IPC": (
        (1, 1, SH, ACCESSION), (2, 1, SH, PROCEDURE_ID), (3, 1, uid_problem, "Study Instance UID"),
        (4, 1, SH, STEP_ID), (5, 1, code_string_problem, MODALITY), (6, 2, description_problem, DESCRIPTION),
        (7, 1, SH, "nom de la station / station name"),
        (9, 1, ae_title_problem, "titre AE de la station / station AE title"),
    ),
}  # fmt: skip
PHYSICIANS = {
    "OBR": (16, "médecin demandeur / requesting physician"),
    "PV1": (8, "médecin adresseur / referring physician"),
}


def check_fields(message: Message) -> None:
    """Every field an order reads, checked against the DICOM value it becomes (FIELDS, PHYSICIANS).
    Raises ContentError at the segment, field and component of the first wrong one."""
    occurrences: Counter[str] = Counter()
    for segment in message.segments:
        occurrences[segment.name] += 1
        place = f"{segment.name}^{occurrences[segment.name]}"
        for field, component, problem, name in FIELDS.get(segment.name, ()):
            label = f"{segment.name}-{field}" + (f".{component}" if component > 1 else "")
            checked(segment.get(field, component), problem, f"{label} ({name})", f"{place}^{field}^1^{component}")
        if segment.name in PHYSICIANS:
            field, name = PHYSICIANS[segment.name]
            value = segment.value(field)
            names = [not_null(value.get(component)) for component in (2, 3, 4)]
            refuse_if(person_name_problem(names), f"{segment.name}-{field} ({name})", f"{place}^{field}^1")


def orders_of(message: Message) -> list[Order]:
    """One Order per ORC/OBR pair (ORM) or per IPC (OMI). Raises ContentError."""
    check_fields(message)
    orders: list[Order] = []
    segments = list(message.segments)
    zds = message.segment("ZDS")
    pv1 = message.segment("PV1")
    for position, orc in enumerate(segments):
        if orc.name != "ORC":
            continue
        following = segments[position + 1 :]
        group = following[: next((i for i, found in enumerate(following) if found.name == "ORC"), len(following))]
        obr = next((found for found in group if found.name == "OBR"), None)
        tq1 = next((found for found in group if found.name == "TQ1"), None)
        ipcs = [found for found in group if found.name == "IPC"]
        base = order_of(orc, obr, tq1, zds, pv1, len(orders) + 1)
        orders.extend([with_ipc(base, ipc) for ipc in ipcs] if ipcs else [base])
    if not orders:
        raise ContentError("the message holds no ORC segment", "ORC")
    return orders


def order_of(
    orc: Segment, obr: Segment | None, tq1: Segment | None, zds: Segment | None, pv1: Segment | None, sequence: int
) -> Order:
    code = orc.get(1)
    if code not in CONTROLS:
        raise ContentError(
            f"order control {code!r} is not supported", f"ORC^{sequence}^1", ErrorCode.TABLE_VALUE_NOT_FOUND
        )
    placer = orc.get(2) or (obr.get(2) if obr else "")
    filler = orc.get(3) or (obr.get(3) if obr else "")
    if not placer and not filler:
        raise ContentError("no placer or filler order number", f"ORC^{sequence}^2")
    return Order(
        control=CONTROLS[code],
        placer_order_number=placer,
        filler_order_number=filler,
        accession_number=obr.get(18) if obr else "",
        requested_procedure_id=obr.get(19) if obr else "",
        study_instance_uid=zds.get(1) if zds else "",
        scheduled_procedure_step_id=obr.get(20) if obr else "",
        procedure=procedure_of(obr),
        procedure_description=one_line(obr.get(4, 2)) if obr else "",
        step_description=one_line(obr.get(4, 5) or obr.get(4, 2)) if obr else "",
        modality=obr.get(24) if obr else "",
        scheduled_start=scheduled_start(orc, obr, tq1),
        referring_physician_name=physician_name(pv1.value(8)) if pv1 else "",
        requesting_physician_name=physician_name(obr.value(16)) if obr else "",
        priority=orc.get(7, 6) or (tq1.get(9) if tq1 else ""),
        reason=one_line(obr.get(31, 2) or obr.get(31, 1)) if obr else "",
        order_status=orc.get(5),
    )


def with_ipc(order: Order, ipc: Segment) -> Order:
    """OMI^O23: the IPC segment (imaging procedure control) carries the DICOM identifiers."""
    return replace(
        order,
        accession_number=ipc.get(1) or order.accession_number,
        requested_procedure_id=ipc.get(2) or order.requested_procedure_id,
        study_instance_uid=ipc.get(3) or order.study_instance_uid,
        scheduled_procedure_step_id=ipc.get(4) or order.scheduled_procedure_step_id,
        modality=ipc.get(5) or order.modality,
        step_description=one_line(ipc.get(6, 2)) or order.step_description,
        station_name=ipc.get(7),
        station_ae_title=ipc.get(9),
    )


def procedure_of(obr: Segment | None) -> CodedEntry:
    if obr is None:
        return CodedEntry()
    return CodedEntry(value=obr.get(4, 1), scheme=obr.get(4, 3), meaning=one_line(obr.get(4, 2)))


def one_line(text: str) -> str:
    """A description as DICOM LO holds it: line breaks (HL7 `\\.br\\`) become spaces."""
    return text.replace("\n", " ")


def scheduled_start(orc: Segment, obr: Segment | None, tq1: Segment | None) -> datetime | None:
    for text in (tq1.get(7) if tq1 else "", orc.get(7, 4), obr.get(27, 4) if obr else "", obr.get(36) if obr else ""):
        moment = timestamp_of(text)
        if moment is not None:
            return moment
    return None


def timestamp_of(text: str) -> datetime | None:
    """HL7 TS/DTM (YYYYMMDD[HH[MM[SS[.S]]]][+ZZZZ]) to a naive local datetime; None when empty or invalid."""
    digits = not_null(text).split("+")[0].split("-")[0].split(".")[0]
    formats = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if len(digits) not in formats:
        return None
    try:
        return datetime.strptime(digits, formats[len(digits)])
    except ValueError:
        return None
