"""Experiments: the comparison of LeWM with the agents people already use (``compare.py``)."""
