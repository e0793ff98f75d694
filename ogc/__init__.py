"""OGC API routers (Features, Tiles, …). Empty until the OGC API issue lands; see the README's roadmap."""
