"""Recipes: scripts that drive the ``vgdata`` and ``vgtrain`` commands end to end (not library code, not installed).

``runs/demo.py`` is ``make demo``. ``bench/`` scripts import its helpers as ``from runs import demo`` after putting
the repository root on ``sys.path``.
"""
