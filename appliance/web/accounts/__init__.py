"""The people who use the console (S1, S3): the administrator's list of accounts, creation (with a
validity period for associates, collaborators and substitutes), changes, disabling, unlocking, a
temporary password; and every user's own password page. Every change is audited."""

from appliance.web.accounts.views import blueprint

__all__ = ["blueprint"]
