"""The course around the engine: the lessons' figures and widget views, the exercise notebooks' generator,
their checks and feedback, the grader and its nbval plugin, and where all of it lives (paths)."""
