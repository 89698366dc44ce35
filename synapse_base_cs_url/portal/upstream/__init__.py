"""HTTP from the portal to its homeservers: the client (``client.py``), bodies read with a
size limit or written in one go (``bodies.py``), the headers passed each way (``headers.py``)
and what each failure means for the client (``failures.py``)."""
