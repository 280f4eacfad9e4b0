"""Patients and studies (H5): the study search and the study page, for the clinical staff."""

from appliance.web.studies.views import blueprint

__all__ = ["blueprint"]
