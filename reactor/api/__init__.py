"""The public API: ReactorBuilder and Reactor."""
