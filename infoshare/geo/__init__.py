"""Geography, pure: the US gazetteer, geocodes, and the areas subscriptions and notices
cover (shapely geometries in lon, lat order). No Flask, no database."""
