"""The RDSR reader on reports made with highdicom: CT (two irradiation events), radiography and
mammography; missing values named, not guessed; what is not a dose report refused with a reason."""

from __future__ import annotations

import pytest
from dose_reports import (
    CtAcquisition,
    ct_dose_report,
    mammography_dose_report,
    radiography_dose_report,
    study_image,
)
from pydicom.dataset import Dataset

from appliance.dose.reader import CT, MAMMOGRAPHY, PROJECTION, UnreadableReport, read_dose_report


def test_a_ct_report_with_two_irradiation_events() -> None:
    image = study_image("CT", description="Scanner encéphale")
    head = CtAcquisition("Encéphale sans injection", 48.5, 820.0, length_mm=160)
    body = CtAcquisition("Thorax", 9.2, 355.5, length_mm=380, phantom="113691")
    report = read_dose_report(with_age(ct_dose_report(image, [head, body]), "064Y"))
    assert report.procedure == CT
    assert [event.protocol for event in report.events] == ["Encéphale sans injection", "Thorax"]
    first, second = report.events
    assert (first.ctdi_vol_mgy, first.dlp_mgy_cm, first.phantom_cm, first.scan_length_mm) == (48.5, 820.0, 16, 160.0)
    assert (second.ctdi_vol_mgy, second.dlp_mgy_cm, second.phantom_cm) == (9.2, 355.5, 32)
    assert report.dlp_total_mgy_cm == 1175.5
    assert report.patient.age_years == 64.0
    assert (report.patient.weight_kg, report.patient.height_cm) == (72.5, 168.0)
    assert (report.device.manufacturer, report.device.model, report.device.station_name) == (
        "Synthetic",
        "Scanner 64",
        "SCANNER1",
    )
    assert report.gaps == ()


def with_age(report: Dataset, age: str) -> Dataset:
    report.PatientAge = age
    return report


def test_a_scout_without_dose_is_not_a_gap_but_a_helix_without_ctdi_is() -> None:
    image = study_image("CT")
    scout = CtAcquisition("Topogramme", None, None, spiral=False)
    helix = CtAcquisition("Encéphale", None, 800.0)
    report = read_dose_report(ct_dose_report(image, [scout, helix]))
    assert report.events[1].ctdi_vol_mgy is None and report.events[1].dlp_mgy_cm == 800.0
    assert report.gaps == ("acquisition 2 CTDIvol: absent",)


def test_radiography_dap_is_converted_to_gray_square_centimetres() -> None:
    report = read_dose_report(
        radiography_dose_report(study_image("DX"), [("Thorax face", 0.0012), ("Thorax profil", 0.003)])
    )
    assert report.procedure == PROJECTION
    assert [event.dap_gy_cm2 for event in report.events] == [12.0, 30.0]  # 1 Gy.m2 = 10 000 Gy.cm2
    assert [event.air_kerma_mgy for event in report.events] == [0.4, 0.4]
    assert report.dap_total_gy_cm2 == 42.0 and report.air_kerma_total_mgy == 0.8


def test_mammography_views_with_glandular_dose_thickness_and_laterality() -> None:
    views = [("R", "CC", 1.1, 52), ("L", "MLO", 1.3, 55)]
    report = read_dose_report(mammography_dose_report(study_image("MG"), views))
    assert report.procedure == MAMMOGRAPHY
    right, left = report.events
    assert (right.agd_mgy, right.entrance_dose_mgy, right.compression_thickness_mm) == (1.1, 4.4, 52.0)
    assert (right.view, right.laterality) == ("cranio-caudal", "Right")
    assert (left.view, left.laterality) == ("medio-lateral oblique", "Left")
    assert report.agd_total_mgy == 2.4
    assert report.gaps == ()


def test_a_unit_the_reader_does_not_know_is_a_gap() -> None:
    report = ct_dose_report(study_image("CT"), [CtAcquisition("Encéphale", 40.0, 700.0)])
    dose = report.ContentSequence[2].ContentSequence[5].ContentSequence[0]  # the acquisition's CTDIvol
    dose.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = "rad"
    found = read_dose_report(report)
    assert found.events[0].ctdi_vol_mgy is None
    assert found.gaps == ("acquisition 1 CTDIvol: unit 'rad' not understood",)


def test_an_sr_that_is_not_a_dose_report_is_refused_with_its_reason() -> None:
    report = ct_dose_report(study_image("CT"), [CtAcquisition("Encéphale", 40.0, 700.0)])
    report.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    with pytest.raises(UnreadableReport) as refused:
        read_dose_report(report)
    assert refused.value.problem == "not-a-dose-report"
    assert "18748-4" in refused.value.detail


def test_a_malformed_content_tree_is_refused_with_its_reason() -> None:
    report = ct_dose_report(study_image("CT"), [CtAcquisition("Encéphale", 40.0, 700.0)])
    del report.ContentSequence[1].ContentSequence[0].ValueType  # the total number of events
    with pytest.raises(UnreadableReport) as refused:
        read_dose_report(report)
    assert refused.value.problem == "unreadable-content"
