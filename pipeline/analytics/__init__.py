"""What reached whom, and when: the analysts' view of the pipeline.

Every touchpoint the worker decides on ends in exactly one outcome on the ``deliveries`` topic
(DELIVERED, FAILED, SUPPRESSED or EXPIRED), and every touchpoint that was due and allowed went out
on ``dispatch`` first. Read together, the two topics answer the questions analysts ask: how many
touchpoints of each journey step reached the customer, why the others did not, how long providers
took to accept them, and whether anyone received too many messages in a week.

The package has three parts, dependencies pointing inward:

- :mod:`pipeline.analytics.reading` reads a topic from the start (or from a point in time) to the
  end offsets seen when it began, or keeps following it; no consumer group, no commits, so it never
  disturbs the pipeline. A record that does not decode is handed on with its error, never fatal.
- :mod:`pipeline.analytics.report` is pure: ``summarize`` turns outcome and dispatch records into
  a :class:`~pipeline.analytics.report.ReportData`, ``write_report`` writes it as Markdown, a
  self-contained HTML page and PNG charts. Same input, same files.
- :mod:`pipeline.analytics.cli` adds ``aftercare deliveries`` (a decoded tail of outcomes) and
  ``aftercare report`` (``--uplift``: :mod:`pipeline.analytics.uplift` and its statistics,
  :mod:`pipeline.analytics.stats`, both pure).
- :mod:`pipeline.analytics.customer` adds ``aftercare customer``: one customer's state from the
  worker's table changelog and their history, for support.

Two facts shape every number:

- Kafka delivery is at-least-once, so after a crash an outcome (or a dispatch) can appear twice
  with the same touchpoint id. Both are de-duplicated by touchpoint id; the first record wins and
  the report says how many were dropped.
- Times on the records are the pipeline's clock, which in demos runs faster than real time. The
  report takes the clock factor and converts latencies to real seconds, saying so.
"""
