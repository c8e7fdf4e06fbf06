"""The latent-grid family (architecture id 3): multi-resolution latent grids and a small synthesis MLP."""
