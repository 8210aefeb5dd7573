"""The doors: how a user reaches the library, the top layer (nothing imports them).

cli (the ``photostyle`` command: ``main``), arguments (its parser, ``--config`` files and CSV
rows), transfer (the one-run command ``transfer`` and ``batch`` share: check, then run), batch
(many runs), runner (the notebook suite, ``photostyle figures``), report (the HTML page of a
suite's results), app (the interactive notebook app) and app_widgets (its widgets and captions).
"""
