"""The model and what makes its answers trustworthy.

Reading images (imaging), finding and framing the white cell (cells, stain), the
classifier itself, its calibration, the out-of-distribution and other-cell-type checks
that give each answer a status (ood, cell_types, trust), the model card, and the
statistics used to evaluate it (metrics, evaluation). Nothing here knows about
explanations, workflows or the app.
"""
