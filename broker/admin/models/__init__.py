"""Request and response bodies of the admin API, one module per area; ``common`` holds the
base classes and the constrained types every area shares."""
