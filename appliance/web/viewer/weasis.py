"""Weasis (the desktop viewer French practices use), started from the console through `weasis://`.

Two launch paths, both offered on the study page:
1. **Manifest** (every Weasis since 3.5): the button asks the console for a one-time manifest
   address, and the browser hands `$dicom:get -w "<address>"` to Weasis. Weasis fetches the manifest
   (format 2.5: Patient, Study, Series, Instance with the current identity) once: the token in its
   address is refused the second time. The manifest names the archive's WADO-URI address and gives
   a short-lived bearer token as an `<httpTag>` that Weasis sends with each WADO request;
   `WadoTransferSyntaxUID="*"` on each series asks for the images as stored (no decompression).
2. **DICOMweb** (Weasis ≥ 3.6): `$dicom:rs --url <base>/dicomweb -r "studyUID=..." -H "Authorization:
   Bearer ..."`: Weasis queries and retrieves through QIDO-RS and WADO-RS itself.

Weasis is a Java program: it never sees the browser's session cookie (hence the tokens), and Java
must trust the box's certificate (see GUIDE.fr.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote_plus
from xml.etree import ElementTree

from appliance.archive.stacks import Stack, StudyStacks

NAMESPACE = "http://www.weasis.org/xsd/2.5"
ARCHIVE_ID = "APPLIANCE"
SCHEME = "weasis://"
SEXES = frozenset({"M", "F", "O"})


def manifest(studies: Sequence[StudyStacks], wado_url: str, bearer_token: str, uid: str) -> bytes:
    """The XML manifest (format 2.5) of `studies` (one patient's), as UTF-8 bytes.

    `wado_url` is the absolute WADO-URI address Weasis requests each instance from; `bearer_token`
    goes in an `<httpTag>` (Authorization) sent with every request.
    """
    ElementTree.register_namespace("", NAMESPACE)
    root = ElementTree.Element(tag("manifest"), {"uid": uid})
    query = ElementTree.SubElement(
        root,
        tag("arcQuery"),
        {"arcId": ARCHIVE_ID, "baseUrl": wado_url, "requireOnlySOPInstanceUID": "false"},
    )
    ElementTree.SubElement(query, tag("httpTag"), {"key": "Authorization", "value": f"Bearer {bearer_token}"})
    if studies:
        add_patient(query, studies)
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def add_patient(query: ElementTree.Element, studies: Sequence[StudyStacks]) -> None:
    first = studies[0]
    person = ElementTree.SubElement(
        query,
        tag("Patient"),
        present(
            PatientID=first.patient_id[:64],
            IssuerOfPatientID=first.issuer_of_patient_id[:64],
            PatientName=first.patient_name[:64],
            PatientBirthDate=first.patient_birth_date if first.patient_birth_date.isdigit() else "",
            PatientSex=first.patient_sex if first.patient_sex in SEXES else "",
        ),
    )
    for entry in studies:
        stacks = [stack for stack in entry.stacks if stack.images]
        if not stacks:
            continue
        element = ElementTree.SubElement(
            person,
            tag("Study"),
            present(
                StudyInstanceUID=entry.study_instance_uid,
                StudyDate=entry.study_date if entry.study_date.isdigit() else "",
                StudyTime=entry.study_time.split(".")[0][:6] if entry.study_time[:6].isdigit() else "",
                AccessionNumber=entry.accession_number[:16],
                StudyDescription=entry.study_description[:64],
            ),
        )
        for stack in stacks:
            add_series(element, stack)


def add_series(study_element: ElementTree.Element, stack: Stack) -> None:
    element = ElementTree.SubElement(
        study_element,
        tag("Series"),
        present(
            SeriesInstanceUID=stack.series_instance_uid,
            Modality=stack.modality if stack.modality.replace("_", "").isalnum() else "",
            SeriesNumber=str(stack.number) if stack.number is not None else "",
            SeriesDescription=stack.description[:64],
            WadoTransferSyntaxUID="*",  # as stored: every Weasis appends &transferSyntax=* to its requests
        ),
    )
    for image in stack.images:
        ElementTree.SubElement(
            element,
            tag("Instance"),
            present(
                SOPInstanceUID=image.sop_instance_uid,
                InstanceNumber=str(image.instance_number) if image.instance_number is not None else "",
            ),
        )


def tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def present(**attributes: str) -> dict[str, str]:
    """The attributes that have a value (Weasis's schema refuses empty dates, times and numbers)."""
    return {name: value for name, value in attributes.items() if value}


def launch_manifest(manifest_url: str) -> str:
    """The `weasis://` address that makes Weasis load the manifest at `manifest_url`."""
    return SCHEME + quote_plus(f'$dicom:get -w "{manifest_url}"', safe="")


def launch_dicomweb(dicomweb_url: str, study_instance_uids: Sequence[str], bearer_token: str) -> str:
    """The `weasis://` address that makes Weasis open these studies through our DICOMweb itself."""
    requests = " ".join(f'-r "studyUID={uid}"' for uid in study_instance_uids)
    command = f'$dicom:rs --url "{dicomweb_url}" {requests} -H "Authorization: Bearer {bearer_token}"'
    return SCHEME + quote_plus(command, safe="")
