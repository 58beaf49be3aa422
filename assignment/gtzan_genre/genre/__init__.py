"""The student package of the GTZAN genre-classification homework.

You implement the functions and classes marked ``raise NotImplementedError`` (each has a contract
docstring), one part at a time, driven by the numbered notebooks next to this folder:

- ``features.py``  part 1: the log-mel front end
- ``models.py``    part 1: the baseline CNN
- ``segments.py``  part 2: cutting clips into segments, clip predictions from segment predictions
- ``augment.py``   part 3: white noise at an SNR, time shift, time stretch, the offline augmented set
- ``fusion.py``    part 4: pooling musicnn embeddings, an MLP on them, fusion with the CNN
- ``retrieval.py`` part 4: nearest neighbours by cosine similarity, precision@k and MAP@k
- ``finetune.py``  part 5: adapting an ImageNet ResNet to log-mels, freezing, learning rates per group
- ``final.py``     part 5: late fusion of clip probabilities (provided, nothing to implement)

The toolkit ``genrekit`` provides everything else (data, caching, training, plots, checkpoints).
"""
