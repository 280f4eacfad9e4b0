"""The quality-control reports in the console (Q1): the list, one report (HTML in the console, a
standalone document, an A4 PDF for an inspector), and the responsible radiologist's sign-off."""

from appliance.web.qc.views import blueprint

__all__ = ["blueprint"]
