"""The dose register's page (K2): per exam type and period, the distribution, the median against the
national reference level, the exams above it, what could not be read; the NRD survey's CSV."""

from appliance.web.dose.views import blueprint

__all__ = ["blueprint"]
