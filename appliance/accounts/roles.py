"""Who may do what in the console (S1): the roles and the permission table every route is checked
against. `docs` in appliance/web/README.md shows the same table; a test keeps them together.

One person, one account, one role (CNIL). The maintenance contractor sees the box's health and runs
its maintenance, never patient data.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SECRETARY = "secretary"
    TECHNOLOGIST = "technologist"
    RADIOLOGIST = "radiologist"
    ADMINISTRATOR = "administrator"
    MAINTENANCE = "maintenance"


class Permission(StrEnum):
    SEARCH_PATIENTS = "search-patients"  # patient and study search, study page, viewing images (DICOMweb)
    STORE_IMAGES = "store-images"  # send images into the archive from a workstation (STOW-RS)
    VIEW_WORKLIST = "view-worklist"  # today's worklist per modality
    RECONCILE = "reconcile"  # attach an unreconciled study to a patient (P2)
    VIEW_HL7_LOG = "view-hl7-log"  # message type, control ID, ACK
    VIEW_HL7_CONTENT = "view-hl7-content"  # the message itself (patient data)
    RETRY_MESSAGES = "retry-messages"  # send a parked outbox message again; a forwarding queue now
    VIEW_FORWARDING = "view-forwarding"  # forwarding rules and queues (no patient data)
    RUN_JOBS = "run-jobs"  # verify, reindex, compress; see their progress
    VIEW_HEALTH = "view-health"  # the box's health tiles (no patient data)
    EDIT_SETTINGS = "edit-settings"  # first-boot setup and the settings pages
    MANAGE_ACCOUNTS = "manage-accounts"  # create, change, lock, unlock accounts
    READ_AUDIT = "read-audit"  # search, verify and export the audit trail
    KEY_IMAGES = "key-images"  # flag key images in the viewer: a new KOS in the archive (K1)
    MAINTENANCE_ACCESS = "maintenance-access"  # open and close the contractor's maintenance tunnel (H4)
    PURGE_STUDIES = "purge-studies"  # the retention list, legal holds, purging a study past its date (R2)
    SIGN_QC = "sign-qc"  # sign off the daily quality-control report (the responsible radiologist, Q1)
    VIEW_DOSE = "view-dose"  # the dose register and the NRD survey (K2)
    VIEW_BILLING = "view-billing"  # the archiving supplements report (Q2)


CLINICAL = frozenset({Role.SECRETARY, Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.ADMINISTRATOR})
EVERYONE = frozenset(Role)

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.SEARCH_PATIENTS: CLINICAL,
    Permission.STORE_IMAGES: frozenset({Role.TECHNOLOGIST, Role.RADIOLOGIST, Role.ADMINISTRATOR}),
    Permission.VIEW_WORKLIST: CLINICAL,
    Permission.RECONCILE: CLINICAL,
    Permission.VIEW_HL7_LOG: frozenset({Role.ADMINISTRATOR, Role.MAINTENANCE}),
    Permission.VIEW_HL7_CONTENT: frozenset({Role.ADMINISTRATOR}),
    Permission.RETRY_MESSAGES: frozenset({Role.ADMINISTRATOR}),
    Permission.VIEW_FORWARDING: frozenset({Role.ADMINISTRATOR, Role.MAINTENANCE}),
    Permission.RUN_JOBS: frozenset({Role.ADMINISTRATOR, Role.MAINTENANCE}),
    Permission.VIEW_HEALTH: EVERYONE,
    Permission.EDIT_SETTINGS: frozenset({Role.ADMINISTRATOR}),
    Permission.MANAGE_ACCOUNTS: frozenset({Role.ADMINISTRATOR}),
    Permission.READ_AUDIT: frozenset({Role.ADMINISTRATOR}),
    Permission.KEY_IMAGES: frozenset({Role.RADIOLOGIST}),
    Permission.MAINTENANCE_ACCESS: frozenset({Role.ADMINISTRATOR}),
    Permission.PURGE_STUDIES: frozenset({Role.ADMINISTRATOR}),
    Permission.SIGN_QC: frozenset({Role.RADIOLOGIST}),
    Permission.VIEW_DOSE: frozenset({Role.RADIOLOGIST, Role.ADMINISTRATOR}),
    Permission.VIEW_BILLING: frozenset({Role.SECRETARY, Role.ADMINISTRATOR}),
}


def may(role: Role | str, permission: Permission) -> bool:
    """Whether a holder of `role` has `permission` (an unknown role has none)."""
    try:
        return Role(role) in PERMISSIONS[permission]
    except ValueError:
        return False
