"""Transports: the only code that touches sockets. The standalone aiohttp server and an ASGI app."""
