"""The storage tiers page (R1): what each tier holds, move now, bring a study back."""

from appliance.web.tiers.views import blueprint

__all__ = ["blueprint"]
