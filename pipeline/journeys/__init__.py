"""What is a journey?

A journey is what a customer should hear from us after one thing happened: an order placed, a
parcel delivered, a week of silence in the app. It has steps, each due a fixed time after that
event's own time, each sent on the first channel the customer allows that works, each only while
it is still worth sending. Policies shared by all journeys (consent, quiet hours, frequency caps,
exits, expiry) decide, at the moment a step is due, whether it goes out or why it does not.

This package is the pure core: :mod:`kinds` (what each kind of event means: parcel stages, closing
kinds, news), :mod:`model` (events, state, commands), :mod:`rules` (the journeys as data),
:mod:`conditions` (every condition a journey may name, and its check), :mod:`policies`,
:mod:`holdout` and :mod:`engine` (``decide``). It imports no I/O library, reads no files and never
reads the clock; :mod:`pipeline.journeysfile` reads the journeys file, and the worker brings events
in, the time, and carries the commands out.
"""
