"""Pure renderers: RouterState -> what the router should look like, one module per subsystem."""
