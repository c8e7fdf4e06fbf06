"""The SIREN family (architecture id 1): sine layers sin(omega0 (W x + b)) and a linear output."""
