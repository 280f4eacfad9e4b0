"""Studies that match no order of their patient (P2): the list, with the reason in words, and the
way to attach one to the right patient (search, both identities side by side, confirmation), which
calls `archive.reconciliation.attach_study` as `appliance archive attach` does."""

from appliance.web.reconciliation.views import blueprint

__all__ = ["blueprint"]
