"""First-boot setup and the settings pages (H7): practice, archive, modalities with their worklist
profiles, RIS link, mail relay, backup target; written to the console's settings layer, put in force
by a reload of every daemon, audited."""

from appliance.web.setup.views import blueprint

__all__ = ["blueprint"]
