"""The dose register (K2) and the national survey of diagnostic reference levels (NRD)."""
