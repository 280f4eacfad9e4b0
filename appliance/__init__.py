"""PACS appliance: DICOM archive, worklist, RIS link and box monitoring for radiology practices."""

__version__ = "0.1.0"
