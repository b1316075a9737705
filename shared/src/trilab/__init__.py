"""Run infrastructure shared by the three projects of this repository.

Kept deliberately thin: nothing in here knows about poses, images or graphs.
"""

__version__ = "0.1.0"
