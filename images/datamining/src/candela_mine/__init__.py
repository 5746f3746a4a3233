"""Candela data mining: preprocessed stacks cut into patches, their features (band statistics,
spectral indices, texture, the change-detection encoder's embedding) and quicklooks, stored in
PostgreSQL (``candela.mine_patches``).

* :mod:`candela_mine.features` – the feature extractor (pure NumPy);
* :mod:`candela_mine.embed` – the encoder embedding (a registered encoder's weights, NumPy);
* :mod:`candela_mine.core` – the ``mine`` service: tiling, quicklooks, COPY into the table;
* :mod:`candela_mine.params` – its parameters.
"""
