"""Today's worklist per modality (W2): the day's scheduled procedure steps and what each modality
receives from the worklist service."""

from appliance.web.worklist.views import blueprint

__all__ = ["blueprint"]
