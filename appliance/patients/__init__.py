"""Patient identities: IPP, INS, French identity traits, merges and identifier changes (P1-P3)."""
