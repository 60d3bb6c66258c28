"""A simulated population of customers living their lives after a checkout.

What is the simulator? It is upstream, played by a program: the shop's order system, the warehouse
and its carriers, the companion app and the preference centre, for a few hundred or a million
customers at once. They sign up, set their channel consents and quiet hours, order espresso
machines, grinders and beans, pay (or fail to, and sometimes recover), cancel, get parcels that are
delayed, missed at the door, split in two or sent back, set up their machines in the app (or get
stuck), rate them high or low, open the app every other day or drift away, and change their minds
about SMS and marketing. Every journey of the default journeys file has its moment in a 45-day run.

It comes in two halves, like the journey core and the worker:

- :mod:`pipeline.simulate.population` is pure: :func:`~pipeline.simulate.population.simulate`
  turns a :class:`~pipeline.simulate.population.Plan` (customers, days, seed, start) into a lazy,
  time-ordered stream of Avro-ready input events. No Kafka, no clock, no I/O: the same plan gives
  the same events, byte for byte, in any process, which is what tests and demos rely on. Its
  parts: :mod:`~pipeline.simulate.plan`, :mod:`~pipeline.simulate.world`,
  :mod:`~pipeline.simulate.planner`, :mod:`~pipeline.simulate.beats` and
  :mod:`~pipeline.simulate.render`.
- :mod:`pipeline.simulate.producer` publishes such a stream to the input topics, as fast as it
  can, at a capped rate, or paced by a clock so that each event reaches Kafka when (simulated) time
  reaches it.

``aftercare simulate`` (:mod:`pipeline.simulate.cli`) puts the two together on the command line.
"""
