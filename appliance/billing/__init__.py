"""Scope and billing (Q2): which exams the specification covers, and the archiving supplements."""
