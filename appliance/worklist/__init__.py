"""The worklist domain: orders from the RIS become scheduled procedure steps (W3), served to the
modalities through per-modality profiles (W1, W2); MPPS and storage commitment track them (W4)."""
