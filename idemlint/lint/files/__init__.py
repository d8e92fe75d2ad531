"""Stage 1, files: which files make the project, where its root is, and which of them
the text pre-check keeps for summarising."""
