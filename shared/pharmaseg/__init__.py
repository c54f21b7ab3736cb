"""pharmaseg: k-means segmentation of pharmaceutical markets, shared by every Cloud Function.

Import submodules directly (``pharmaseg.model.features``, ``pharmaseg.model.artifact``...) so that serving
code pays only for what it uses: nothing here imports scikit-learn, pandas or Google clients.
"""

__version__ = "0.1.0"
