"""The course's own grading tests (a package, so that pytest imports them by their full name and
puts the project folder, not this one, on the import path)."""
