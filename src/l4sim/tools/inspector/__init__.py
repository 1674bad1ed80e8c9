"""The web inspector of recorded runs (``l4sim inspect``, ``l4sim replay``).

:mod:`.model` turns a run's records into what the views show; :mod:`.site` writes the page
as a static folder; :mod:`.server` serves it (the ``web`` extra: Starlette and uvicorn);
:mod:`.replay` runs a recorded boot again up to an event and reads the kernel there.  The
page itself is plain HTML, CSS and JavaScript in ``static/``, without a build step or
anything fetched from elsewhere.
"""
