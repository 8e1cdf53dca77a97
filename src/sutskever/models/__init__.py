"""Models: pure nn.Modules, one file per system (no optimizer, data, device or logging code)."""
