"""Role-play inference: input speech -> the ARP-Model's spoken answer (``jobs/respond.py``)."""
