"""World-model training: data, training step, bounded fit loop, checkpoints and evaluation.

Nothing is imported or built here at import time; import the submodules you need.
"""
