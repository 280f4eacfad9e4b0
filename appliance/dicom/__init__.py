"""The DICOM edge: pynetdicom handlers that decode, make one domain call and answer a status."""
