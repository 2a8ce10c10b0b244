"""Tests of the SIP XML documents."""
