"""The offline local stack of the TRE egress approval service (DESIGN.md §7).

`python -m egress_local up|down|status|outputs|swb-submit|router` (see `__main__`). Run by the
Makefile from the project-local virtualenv `.venv/stack`.
"""
