"""The retention pages (R2): studies past their retention date, legal holds, confirmed purges."""

from appliance.web.retention.views import blueprint

__all__ = ["blueprint"]
