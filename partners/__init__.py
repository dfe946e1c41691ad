"""Models and pure domain rules shared by the workflows, the activities and the starters.

Nothing in this package does I/O, so the workflow sandbox can pass it through.
"""
