"""Data read by the runner: the manifest schema, the style catalog, the model rules and the price estimates."""
