"""Stage 4, analysis: facts about each function, and the walk from every task through
the project functions it calls, which the checks read."""
