"""Vector and raster tiles. Empty until the tiles issue lands; see the README's roadmap."""
