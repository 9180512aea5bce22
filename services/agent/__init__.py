"""The curious agent: a Q-network trained by double DQN on dreams, and its run-time policy.

Nothing is imported or built here at import time; import the submodules you need
(`config`, `qnet`, `replay`, `dqn`, `checkpoint`, `policy`, `observe`).
"""
