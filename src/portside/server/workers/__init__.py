"""Workers: typed-capability task dispatch over HTTP + SSE leases."""
