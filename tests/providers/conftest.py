"""The API tests talk to the real ASGI app under daphne (the browser tests' server)."""
