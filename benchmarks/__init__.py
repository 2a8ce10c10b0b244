"""Throughput measurements of the SIP core (scripts, not tests)."""
