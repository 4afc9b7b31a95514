"""Running the reactor: settings, the embedded dev stack, the worker."""
