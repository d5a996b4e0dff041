"""Why the model answered as it did.

The explanation methods (``explainers/``, one module each, behind one interface), the
overlays that draw their maps, the numbers that compare them (faithfulness), and the
Compare runner with its output writers, page tables and figures. Builds on ``model``.
"""
