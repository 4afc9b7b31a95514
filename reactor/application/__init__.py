"""Use cases over the domain and storage: applying jobs, reading documents."""
