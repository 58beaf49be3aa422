"""genrekit: the toolkit of the GTZAN genre-classification homework.

Plumbing students use but never edit: configuration (``config``), datasets and audio (``data``,
``synth``), feature caching (``cache``), training and evaluation (``train``, ``metrics``, ``plots``),
checkpoints (``checkpoint``), pretrained models (``musicnn``, ``resnet``). It never contains the
answer to a stub of the student package.
"""

__version__ = "0.1.0"
