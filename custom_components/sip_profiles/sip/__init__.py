"""A sans-I/O SIP user agent: bytes, timer ticks and commands in; bytes, deadlines and events out.

Nothing in this package (outside ``aio``) imports asyncio or Home Assistant.
"""
