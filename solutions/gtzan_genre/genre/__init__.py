"""The student package of the GTZAN genre-classification homework.

You implement the functions and classes marked ``raise NotImplementedError`` (each has a contract
docstring), one part at a time, driven by the numbered notebooks next to this folder:

- ``features.py``  part 1: the log-mel front end
- ``models.py``    part 1: the baseline CNN
- ``segments.py``  part 2: cutting clips into segments, clip predictions from segment predictions

The toolkit ``genrekit`` provides everything else (data, caching, training, plots, checkpoints).
"""
