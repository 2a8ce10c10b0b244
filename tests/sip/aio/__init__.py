"""Tests of the asyncio layer against real peers on loopback."""
