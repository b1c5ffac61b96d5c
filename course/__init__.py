"""The normalization-layers course's Python: its checks (normcheck, shipped beside the
notebooks), the release stubs, the demo submissions and the figures."""
