"""DICOMweb (PS3.18) for viewers and tools: QIDO-RS, WADO-RS and STOW-RS under /dicomweb, WADO-URI
at /wado, on the same domain functions as the DICOM edge. See README.md in this folder."""

from appliance.web.dicomweb.views import blueprint

__all__ = ["blueprint"]
