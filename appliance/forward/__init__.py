"""Forwarding (A7) and priors from remote archives: the rules, the queues per destination, the
consumers of the change feed, and the searches and fetches of the remote archives. No DICOM here:
the worker delivers through the DICOM edge (`appliance.dicom.requestor`)."""
