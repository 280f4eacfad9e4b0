"""The fast identifier writer writes exactly what pydicom writes, or lets pydicom write."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import encode

from appliance.config.loader import config_from_document
from appliance.dicom.encoding import written
from appliance.worklist.profiles import adapted, full_item, mirrored, typical_query


def study_answer(character_set: str, name: str) -> Dataset:
    answer = Dataset()
    answer.SpecificCharacterSet = character_set
    answer.QueryRetrieveLevel = "STUDY"
    answer.PatientName = name
    answer.PatientID = "IPP0001"
    answer.StudyInstanceUID = "1.2.826.0.1.3680043.10.1471.5"
    answer.ModalitiesInStudy = ["CT", "MR"]
    answer.NumberOfStudyRelatedInstances = 600
    answer.add_new(0x00100030, "DA", None)
    answer.ReferencedStudySequence = Sequence()
    return answer


def worklist_answer(character_set: str) -> Dataset:
    item = {
        "scheduled_station_ae_title": "CT1", "scheduled_station_name": "SALLE1", "scheduled_start_date": "20261123",
        "scheduled_start_time": "093000", "modality": "CT", "scheduled_performing_physician_name": "",
        "scheduled_procedure_step_description": "Scanner thoracique", "scheduled_procedure_step_id": "SPS1",
        "status": "SCHEDULED", "procedure_code_value": "ZBQK002", "procedure_code_scheme": "CCAM",
        "procedure_code_meaning": "Radiographie du thorax", "requested_procedure_id": "RP1",
        "requested_procedure_description": "Scanner", "priority": "", "study_instance_uid": "2.25.1",
        "accession_number": "ACC1", "referring_physician_name": "GÉRARD^Anne", "requesting_physician_name": "",
        "reason": "", "patient_name": "ŒUVRARD^Chloé", "patient_id": "IPP1", "issuer_of_patient_id": "CABINET",
        "patient_birth_date": "19610412", "patient_sex": "F",
        "other_patient_ids": [{"PatientID": "261017510612345", "IssuerOfPatientID": "ASIP-SANTE-INS-NIR",
                               "IssuerOfPatientIDQualifiersSequence": [{"UniversalEntityID": "1.2.250.1.213.1.4.8",
                                                                         "UniversalEntityIDType": "ISO"}],
                               "TypeOfPatientID": "TEXT"}],
    }  # fmt: skip
    config = config_from_document({"worklist": {"default_profile": {"character_set": character_set}}}, "t")
    profile = config.worklist.default_profile
    return adapted(mirrored(typical_query(), full_item(item, profile), None), profile)


@pytest.mark.parametrize("implicit", [True, False])
@pytest.mark.parametrize(
    "dataset",
    [
        study_answer("ISO_IR 192", "ŒUVRARD^Chloé"),
        study_answer("ISO_IR 100", "LEFÈVRE^Hélène"),
        study_answer("", "MARTIN^Paul"),
        worklist_answer("ISO_IR 192"),
        worklist_answer("ISO_IR 100"),
        worklist_answer("ASCII"),
    ],
)
def test_same_bytes_as_pydicom(dataset: Dataset, implicit: bool) -> None:
    codec = {"ISO_IR 192": "utf_8", "ISO_IR 100": "latin_1"}.get(str(dataset.get("SpecificCharacterSet", "")), "ascii")
    assert written(dataset, implicit, codec) == encode(dataset, implicit, True)
