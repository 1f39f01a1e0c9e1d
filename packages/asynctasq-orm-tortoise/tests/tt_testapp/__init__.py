"""Models and tasks of the tests (app label ``models``)."""
