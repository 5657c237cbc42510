"""Stand-in for torchvision (only `utils` is imported, and unused in --symbolic-env mode)."""
