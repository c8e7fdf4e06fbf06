"""The Poly-INR family (architecture id 2): layers that multiply by affine maps of the coordinates."""
