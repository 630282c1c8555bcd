"""The traffic simulator: a deterministic population of accounts with personas (``traffic``,
``personas``, ``population``: pure) and the HTTP side that delivers its events to an ingest
service (``sender``, ``runner``). ``healthscore simulate`` is the command (``cli``)."""
