"""The audit trail (S2): every access to patient data, every login and every change of settings or
accounts, as DICOM PS3.15 A.5 events, append-only and hash-chained, kept apart from the index.

`events` holds the vocabulary every edge uses to describe what happened.
"""
