"""Training of the weights that ship in the package (codec/inits/*.npz)."""
