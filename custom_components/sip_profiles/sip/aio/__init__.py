"""The asyncio side of the SIP core: sockets (UDP, TCP, TLS) and server location through DNS.

This package moves bytes and resolves names; every SIP decision stays in the sans-I/O core.
Nothing here blocks the event loop except the functions documented as blocking, which callers
run in an executor.
"""
