"""pytest helpers that prove a task retry-safe."""
