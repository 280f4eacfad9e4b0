"""The dose register (K2): one row per Radiation Dose SR read from the change feed (or per CT dose
screen that cannot be read), and one row per irradiation event of it.

No patient data is copied here beyond what the national survey needs at the time of the exam (age,
sex, weight, height): the patient is reached through the study (`study_instance_uid` -> `study` ->
`patient`), so a merge or a correction of the identity is seen at once.
"""

from sqlalchemy import BigInteger, Column, DateTime, Float, ForeignKey, Integer, String, Table, Text

from appliance.db.schema.base import UID, BigKey, metadata

dose_report = Table(
    "dose_report",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("sop_instance_uid", UID, nullable=False, unique=True),
    Column("study_instance_uid", UID, nullable=False, index=True),
    # read (values in the register), unreadable (the problem says why; the object is archived all the
    # same), screen (a CT dose screen, a Secondary Capture: listed as "dose not readable")
    Column("status", String(16), nullable=False),
    Column("problem", String(32), nullable=False, server_default=""),  # a code the console words
    Column("detail", Text, nullable=False, server_default=""),  # technical detail (never patient data)
    Column("procedure", String(16), nullable=False, server_default=""),  # ct, projection, mammography
    Column("modality", String(16), nullable=False, server_default=""),
    Column("exam_date", String(8), nullable=False, server_default="", index=True),  # YYYYMMDD
    Column("study_description", String(64), nullable=False, server_default=""),
    Column("manufacturer", String(64), nullable=False, server_default=""),
    Column("model", String(64), nullable=False, server_default=""),
    Column("station_name", String(64), nullable=False, server_default=""),
    Column("patient_age_years", Float, nullable=True),
    Column("patient_sex", String(16), nullable=False, server_default=""),
    Column("patient_weight_kg", Float, nullable=True),
    Column("patient_height_cm", Float, nullable=True),
    Column("events", Integer, nullable=False, server_default="0"),
    Column("dlp_total_mgy_cm", Float, nullable=True),
    Column("dap_total_gy_cm2", Float, nullable=True),
    Column("air_kerma_total_mgy", Float, nullable=True),
    Column("agd_total_mgy", Float, nullable=True),
    Column("change_id", BigInteger, nullable=False),  # the feed entry it was read from
    Column("read_at", DateTime(timezone=True), nullable=False),
)

dose_event = Table(
    "dose_event",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("report_pk", BigKey, ForeignKey("dose_report.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("number", Integer, nullable=False),  # order in the report, from 1
    Column("event_uid", UID, nullable=False, server_default=""),
    Column("protocol", String(64), nullable=False, server_default=""),
    Column("target_region", String(64), nullable=False, server_default=""),
    Column("acquisition_type", String(64), nullable=False, server_default=""),
    Column("ctdi_vol_mgy", Float, nullable=True),
    Column("dlp_mgy_cm", Float, nullable=True),
    Column("phantom_cm", Integer, nullable=True),  # 16 (head) or 32 (body)
    Column("scan_length_mm", Float, nullable=True),
    Column("dap_gy_cm2", Float, nullable=True),
    Column("air_kerma_mgy", Float, nullable=True),
    Column("agd_mgy", Float, nullable=True),
    Column("entrance_dose_mgy", Float, nullable=True),
    Column("compression_thickness_mm", Float, nullable=True),
    Column("view", String(64), nullable=False, server_default=""),
    Column("laterality", String(16), nullable=False, server_default=""),
)
