"""Apps built on the hub's public API; the core never imports them."""
