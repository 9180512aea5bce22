"""Dream generation: batched imagined rollouts of a world model, written as dream shards.

Nothing is imported or built here at import time; import the submodules you need
(`services.dreamer.rollout`). The shard format lives in `shared.dreams` (the agent reads it).
"""
