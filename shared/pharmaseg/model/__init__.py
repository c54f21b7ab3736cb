"""The model: features, the OECD panel, training, the artifact and its registry, explanations."""
