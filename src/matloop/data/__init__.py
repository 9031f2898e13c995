"""Package data: the shipped reference sets, recipe pack, prototype library and prices."""
