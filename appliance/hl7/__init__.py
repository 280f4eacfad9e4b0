"""The HL7 v2 edge (MLLP listener, ADT/ORM/OMI/QBP handlers, outbound messages to the RIS)."""
