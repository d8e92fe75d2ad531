"""Stage 3, index: the project index over every file's summary (names, imports,
classes, models) and the tasks declared in it."""
