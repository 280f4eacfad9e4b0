"""Maintenance jobs from the console: start a verification, a compression or an index check, follow
its progress bar, cancel it, read its result. The background worker runs them (appliance.jobs)."""

from appliance.web.jobs.views import blueprint

__all__ = ["blueprint"]
